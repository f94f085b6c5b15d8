import type { IncomingMessage, OutgoingHttpHeaders } from "node:http";
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { Credentials } from "./credentials";
import { ExecCredentialError, KubeApiError, KubeConfigError } from "./errors";
import type { KubeConfig, LoadKubeConfigOptions } from "./kubeconfig";
import { loadKubeConfig, parseKubeConfig } from "./kubeconfig";
import { LineSplitter } from "./ndjson";
import type { KubeList, KubeObject, KubeQuery, KubeStatus, WatchEvent, WatchEventType } from "./types";

export const DEFAULT_KUBE_CLIENT_OPTIONS = {
  /** Deadline of a whole non-watch request (connect, head and body); for a watch, of its response head. */
  timeoutMs: 30_000,
  /** Non-watch answers larger than this fail (a 500-item page of pods is a few MB). */
  maxResponseBytes: 64 * 1024 * 1024,
  /** One watch event larger than this fails the watch. */
  maxEventBytes: 16 * 1024 * 1024,
  /** Watch silence tolerated beyond the watch's own timeoutSeconds before the connection counts as dead. */
  watchIdleGraceMs: 60_000,
  /** Watches without timeoutSeconds get this one. */
  watchTimeoutSeconds: 300,
  /** Connections kept per API server (watches hold one each). */
  maxSockets: 64,
  userAgent: "podidentity",
} as const;

export interface KubeClientOptions {
  timeoutMs?: number;
  maxResponseBytes?: number;
  maxEventBytes?: number;
  watchIdleGraceMs?: number;
  maxSockets?: number;
  userAgent?: string;
}

export interface RequestOptions {
  query?: KubeQuery;
  /** Sent as JSON unless a string or Buffer. */
  body?: unknown;
  /** Default application/json when there is a body. */
  contentType?: string;
  /** Extra request headers, e.g. `accept` for kubectl's Table form (authorization is always the client's). */
  headers?: Record<string, string>;
  /** Aborting rejects with the signal's reason. */
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface WatchOptions {
  query?: KubeQuery;
  /** Aborting ends the stream without an error. */
  signal?: AbortSignal;
  /** No byte (event or bookmark) for this long → the connection is dead: the stream fails (KubeApiError, reason IdleTimeout). Default: timeoutSeconds + watchIdleGraceMs. */
  idleTimeoutMs?: number;
}

export type PatchType = "merge" | "json" | "strategic";

const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  merge: "application/merge-patch+json",
  json: "application/json-patch+json",
  strategic: "application/strategic-merge-patch+json",
};

/** Thrown inside to tell our own deadline apart from the caller's abort. */
class DeadlineExceeded extends Error {}

/**
 * The REST calls the daemons make, over node:http(s) with one keep-alive agent: no third-party transport, so
 * NMI keeps its memory budget and MIC does not load @kubernetes/client-node's generated models. Every failure is
 * one KubeApiError; credentials are asked for before each request (token files and exec plugins rotate), and a
 * 401 with credentials that can change is retried once with fresh ones.
 */
export class KubeClient {
  readonly server: string;
  readonly config: KubeConfig;
  readonly #o: Required<KubeClientOptions>;
  readonly #agent: HttpAgent | HttpsAgent;
  readonly #https: boolean;

  constructor(config: KubeConfig, options: KubeClientOptions = {}) {
    const d = DEFAULT_KUBE_CLIENT_OPTIONS;
    this.#o = {
      timeoutMs: options.timeoutMs ?? d.timeoutMs,
      maxResponseBytes: options.maxResponseBytes ?? d.maxResponseBytes,
      maxEventBytes: options.maxEventBytes ?? d.maxEventBytes,
      watchIdleGraceMs: options.watchIdleGraceMs ?? d.watchIdleGraceMs,
      maxSockets: options.maxSockets ?? d.maxSockets,
      userAgent: options.userAgent ?? d.userAgent,
    };
    for (const key of ["timeoutMs", "maxResponseBytes", "maxEventBytes", "watchIdleGraceMs", "maxSockets"] as const) {
      const v = this.#o[key];
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`KubeClient: ${key} must be a positive integer, got ${v}`);
    }
    this.config = config;
    this.server = config.server.replace(/\/+$/, "");
    this.#https = this.server.startsWith("https:");
    this.#agent = this.#https
      ? new HttpsAgent({
          keepAlive: true,
          maxSockets: this.#o.maxSockets,
          ...(config.caPem !== undefined && { ca: config.caPem }),
          ...(config.certPem !== undefined && { cert: config.certPem }),
          ...(config.keyPem !== undefined && { key: config.keyPem }),
          ...(config.tlsServerName !== undefined && { servername: config.tlsServerName }),
          rejectUnauthorized: !config.insecureSkipTlsVerify,
        })
      : new HttpAgent({ keepAlive: true, maxSockets: this.#o.maxSockets });
  }

  /** From kubeconfig text (YAML or JSON): its current context. Relative file paths resolve against `baseDir`. */
  static fromKubeconfig(text: string, options: KubeClientOptions & { baseDir?: string; source?: string } = {}): KubeClient {
    const { baseDir = process.cwd(), source = "(kubeconfig text)", ...clientOptions } = options;
    return new KubeClient(parseKubeConfig(text, { source, baseDir }), clientOptions);
  }

  /** `loadKubeConfig`'s order: the path if given, then $KUBECONFIG, in-cluster, ~/.kube/config. */
  static load(options: LoadKubeConfigOptions & KubeClientOptions = {}): KubeClient {
    const { kubeconfigPath, env, context, homeDir, serviceAccountDir, clock, ...clientOptions } = options;
    const config = loadKubeConfig({
      ...(kubeconfigPath !== undefined && { kubeconfigPath }),
      ...(env !== undefined && { env }),
      ...(context !== undefined && { context }),
      ...(homeDir !== undefined && { homeDir }),
      ...(serviceAccountDir !== undefined && { serviceAccountDir }),
      ...(clock !== undefined && { clock }),
    });
    return new KubeClient(config, clientOptions);
  }

  /** Closes pooled connections; open watches break. */
  async close(): Promise<void> {
    this.#agent.destroy();
  }

  get<T = KubeObject>(path: string, options: Omit<RequestOptions, "body"> = {}): Promise<T> {
    return this.request<T>("GET", path, options);
  }

  list<T = KubeObject>(path: string, options: Omit<RequestOptions, "body"> = {}): Promise<KubeList<T>> {
    return this.request<KubeList<T>>("GET", path, options);
  }

  /** POST to a collection path. */
  create<T = KubeObject>(path: string, body: unknown, options: Omit<RequestOptions, "body"> = {}): Promise<T> {
    return this.request<T>("POST", path, { ...options, body });
  }

  /** PUT an object (its metadata.resourceVersion makes it conditional). */
  update<T = KubeObject>(path: string, body: unknown, options: Omit<RequestOptions, "body"> = {}): Promise<T> {
    return this.request<T>("PUT", path, { ...options, body });
  }

  patch<T = KubeObject>(path: string, patch: unknown, type: PatchType = "merge", options: Omit<RequestOptions, "body" | "contentType"> = {}): Promise<T> {
    return this.request<T>("PATCH", path, { ...options, body: patch, contentType: PATCH_CONTENT_TYPES[type] });
  }

  /** DELETE; `body` may carry DeleteOptions (preconditions, propagationPolicy). */
  delete<T = KubeStatus>(path: string, options: RequestOptions = {}): Promise<T> {
    return this.request<T>("DELETE", path, options);
  }

  /** Any call; the answer parsed as JSON (undefined when empty). */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new DeadlineExceeded()), options.timeoutMs ?? this.#o.timeoutMs);
    const signal = options.signal === undefined ? deadline.signal : AbortSignal.any([options.signal, deadline.signal]);
    try {
      const res = await this.#open(method, path, options, signal);
      let text: string;
      try {
        text = await readBounded(res, this.#o.maxResponseBytes, method, path);
      } catch (error) {
        res.destroy();
        throw error;
      }
      if ((res.statusCode ?? 0) >= 400) throw KubeApiError.fromResponse(res.statusCode ?? 0, text, method, path);
      if (text === "") return undefined as T;
      try {
        return JSON.parse(text) as T;
      } catch (cause) {
        throw new KubeApiError({ status: res.statusCode ?? 0, reason: "InvalidResponse", message: "the answer is not JSON", method, path, body: text.slice(0, 1024) }, { cause });
      }
    } catch (error) {
      throw this.#translate(error, method, path, options.signal, signal, options.timeoutMs ?? this.#o.timeoutMs);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * A watch (`?watch=true`) as an async stream of events, until the server ends it (the stream ends), the signal
   * aborts (the stream ends), or it fails: a refusal or a watch ERROR event (KubeApiError with the Status's code,
   * 410 → `isGone`), a cut connection (reason StreamBroken) or silence beyond the idle timeout (IdleTimeout).
   * Breaking out of the loop closes the connection.
   */
  async *watch<T>(path: string, options: WatchOptions = {}): AsyncGenerator<WatchEvent<T>, void, undefined> {
    const timeoutSeconds = Number(options.query?.["timeoutSeconds"] ?? DEFAULT_KUBE_CLIENT_OPTIONS.watchTimeoutSeconds);
    const query: KubeQuery = { ...options.query, watch: true, timeoutSeconds };
    const idleMs = options.idleTimeoutMs ?? timeoutSeconds * 1000 + this.#o.watchIdleGraceMs;
    const deadline = new AbortController();
    const headTimer = setTimeout(() => deadline.abort(new DeadlineExceeded()), this.#o.timeoutMs);
    const signal = options.signal === undefined ? deadline.signal : AbortSignal.any([options.signal, deadline.signal]);
    let res: IncomingMessage;
    try {
      res = await this.#open("GET", path, { query }, signal);
      if ((res.statusCode ?? 0) >= 400) throw KubeApiError.fromResponse(res.statusCode ?? 0, await readBounded(res, 1024 * 1024, "WATCH", path), "WATCH", path);
    } catch (error) {
      if (options.signal?.aborted) return;
      throw this.#translate(error, "WATCH", path, options.signal, signal, this.#o.timeoutMs);
    } finally {
      clearTimeout(headTimer);
    }
    // From here only the caller's signal and the idle timer end the stream; the head deadline is spent.
    const idle = setTimeout(() => res.destroy(new KubeApiError({ status: 0, reason: "IdleTimeout", message: `no data for ${idleMs} ms`, method: "WATCH", path })), idleMs);
    const onAbort = (): void => void res.destroy();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    const lines = new LineSplitter(this.#o.maxEventBytes);
    try {
      for await (const chunk of res as AsyncIterable<Buffer>) {
        idle.refresh();
        for (const line of lines.push(chunk)) {
          let event: { type?: WatchEventType; object?: unknown };
          try {
            event = JSON.parse(line) as typeof event;
          } catch (cause) {
            throw new KubeApiError({ status: 0, reason: "InvalidEvent", message: "a watch event is not JSON", method: "WATCH", path }, { cause });
          }
          if (event.type === "ERROR") throw KubeApiError.fromStatus((event.object ?? {}) as KubeStatus, "WATCH", path);
          if (event.type === undefined || event.object === undefined) continue;
          yield { type: event.type, object: event.object as T };
        }
      }
      if (options.signal?.aborted) return;
      // Node ends a response cut mid-stream as "aborted" rather than with an error.
      if (!res.complete || lines.pendingBytes > 0) throw new KubeApiError({ status: 0, reason: "StreamBroken", message: "the connection was cut mid-stream", method: "WATCH", path });
    } catch (error) {
      if (options.signal?.aborted) return;
      if (error instanceof KubeApiError) throw error;
      if (error instanceof RangeError) throw new KubeApiError({ status: 0, reason: "EventTooLarge", message: error.message, method: "WATCH", path }, { cause: error });
      throw new KubeApiError({ status: 0, reason: "StreamBroken", message: (error as Error).message, method: "WATCH", path }, { cause: error });
    } finally {
      clearTimeout(idle);
      options.signal?.removeEventListener("abort", onAbort);
      res.destroy();
    }
  }

  /** Sends the request (retrying a 401 once when the credentials can change) and resolves with the response head. */
  async #open(method: string, path: string, options: RequestOptions, signal: AbortSignal): Promise<IncomingMessage> {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const body =
      options.body === undefined ? undefined : typeof options.body === "string" || Buffer.isBuffer(options.body) ? options.body : JSON.stringify(options.body);
    for (let attempt = 0; ; attempt++) {
      const credentials = await this.config.credentials.get();
      const res = await this.#send(url, method, body, options, credentials, signal);
      if (res.statusCode === 401 && attempt === 0 && this.config.credentials.invalidate()) {
        res.resume();
        continue;
      }
      return res;
    }
  }

  #send(url: URL, method: string, body: string | Buffer | undefined, options: RequestOptions, credentials: Credentials, signal: AbortSignal): Promise<IncomingMessage> {
    const headers: OutgoingHttpHeaders = { accept: "application/json", "user-agent": this.#o.userAgent, ...options.headers };
    if (credentials.token !== undefined) headers["authorization"] = `Bearer ${credentials.token}`;
    if (body !== undefined) {
      headers["content-type"] = options.contentType ?? "application/json";
      headers["content-length"] = Buffer.byteLength(body);
    }
    const send = this.#https ? httpsRequest : httpRequest;
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = send(
        url,
        {
          method,
          headers,
          agent: this.#agent,
          signal,
          // A client certificate from an exec plugin; the agent pools connections per certificate.
          ...(credentials.certPem !== undefined && { cert: credentials.certPem, key: credentials.keyPem }),
        },
        resolve,
      );
      req.on("error", reject);
      req.end(body);
    });
  }

  /** Raw failures become KubeApiError here (the caller's abort stays an abort). */
  #translate(error: unknown, method: string, path: string, callerSignal: AbortSignal | undefined, signal: AbortSignal, timeoutMs: number): unknown {
    // Already typed: the server's answer, or credentials that could not be obtained (token file, exec plugin).
    if (error instanceof KubeApiError || error instanceof KubeConfigError || error instanceof ExecCredentialError) return error;
    // The caller gave up: surface their reason (an AbortError), as fetch does.
    if (callerSignal?.aborted) return callerSignal.reason;
    // Our deadline fired.
    if (signal.aborted && signal.reason instanceof DeadlineExceeded) {
      return new KubeApiError({ status: 0, reason: "Timeout", message: `no answer within ${timeoutMs} ms from ${this.server}`, method, path });
    }
    // Connection refused, reset, TLS failure: the server could not be reached.
    const code = (error as NodeJS.ErrnoException).code;
    return new KubeApiError({ status: 0, reason: "Unreachable", message: `${this.server}: ${code ?? (error as Error).message}`, method, path }, { cause: error });
  }
}

async function readBounded(res: IncomingMessage, maxBytes: number, method: string, path: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new KubeApiError({ status: 0, reason: "ResponseTooLarge", message: `the answer exceeded ${maxBytes} bytes`, method, path });
    chunks.push(chunk);
  }
  if (!res.complete) throw new KubeApiError({ status: 0, reason: "StreamBroken", message: "the connection was cut mid-answer", method, path });
  return Buffer.concat(chunks).toString("utf8");
}
