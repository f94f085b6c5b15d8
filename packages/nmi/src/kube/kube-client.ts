import { readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { HttpsAgent, fetchBuffer, openRequest, type HttpAgent } from "../http-request";
import { parse as parseYaml } from "yaml";
import type { KubeList, KubeObject, WatchEventType } from "./kube-types";

export interface KubeClientOptions {
  /** API server URL, e.g. https://10.0.0.1:443. */
  server: string;
  caPem?: string;
  /** Client certificate authentication. */
  certPem?: string;
  keyPem?: string;
  /** Bearer token, or a file re-read when it changes (bound service account tokens rotate). */
  token?: string;
  tokenFile?: string;
  insecureSkipTlsVerify?: boolean;
  /** Per-request deadline for non-watch calls. */
  timeoutMs?: number;
}

/** A refusal or failure of the API server, with its HTTP status (0 when it could not be reached). */
export class KubeApiError extends Error {
  readonly statusCode: number;
  readonly body: unknown;
  readonly code = "KUBE_API_ERROR";

  constructor(statusCode: number, message: string, body?: unknown, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "KubeApiError";
    this.statusCode = statusCode;
    this.body = body;
  }
}

const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

interface KubeconfigFile {
  "current-context"?: string;
  contexts?: Array<{ name: string; context: { cluster: string; user?: string } }>;
  clusters?: Array<{ name: string; cluster: Record<string, unknown> }>;
  users?: Array<{ name: string; user?: Record<string, unknown> }>;
}

function dataOrFile(entry: Record<string, unknown>, key: string, baseDir: string): string | undefined {
  const data = entry[`${key}-data`];
  if (typeof data === "string" && data !== "") return Buffer.from(data, "base64").toString("utf8");
  const file = entry[key];
  if (typeof file === "string" && file !== "") return readFileSync(file.startsWith("/") ? file : join(baseDir, file), "utf8");
  return undefined;
}

/**
 * The small Kubernetes REST client NMI needs: list, watch (NDJSON stream), get and put, over node:https, with
 * kubeconfig or in-cluster credentials. NMI uses it instead of @kubernetes/client-node, whose import alone costs
 * ~90 MB of RSS (all generated API models) — more than NMI's whole memory budget on every node (issue 5: < 100 MB).
 */
export class KubeClient {
  readonly server: string;
  readonly #options: KubeClientOptions;
  readonly #agent: HttpsAgent | HttpAgent;
  #token: string | undefined;
  #tokenReadAtMs = 0;
  #tokenMtimeMs = 0;

  constructor(options: KubeClientOptions) {
    this.#options = options;
    this.server = options.server.replace(/\/+$/, "");
    this.#token = options.token;
    this.#agent = new HttpsAgent({
      keepAlive: true,
      ...(options.caPem !== undefined && { ca: options.caPem }),
      ...(options.certPem !== undefined && { cert: options.certPem }),
      ...(options.keyPem !== undefined && { key: options.keyPem }),
      rejectUnauthorized: options.insecureSkipTlsVerify !== true,
    });
  }

  /** From kubeconfig text (YAML or JSON): the current context's cluster and user. */
  static fromKubeconfig(text: string, baseDir = process.cwd()): KubeClient {
    const config = (parseYaml(text) ?? {}) as KubeconfigFile;
    const contextName = config["current-context"];
    const context = config.contexts?.find((c) => c.name === contextName)?.context ?? config.contexts?.[0]?.context;
    const cluster = config.clusters?.find((c) => c.name === context?.cluster)?.cluster ?? config.clusters?.[0]?.cluster;
    if (cluster === undefined || typeof cluster["server"] !== "string") throw new TypeError("KubeClient: the kubeconfig names no cluster server");
    const user = config.users?.find((u) => u.name === context?.user)?.user ?? {};
    const caPem = dataOrFile(cluster, "certificate-authority", baseDir);
    const certPem = dataOrFile(user, "client-certificate", baseDir);
    const keyPem = dataOrFile(user, "client-key", baseDir);
    return new KubeClient({
      server: cluster["server"],
      ...(caPem !== undefined && { caPem }),
      ...(certPem !== undefined && { certPem }),
      ...(keyPem !== undefined && { keyPem }),
      ...(typeof user["token"] === "string" && { token: user["token"] }),
      ...(typeof user["tokenFile"] === "string" && { tokenFile: user["tokenFile"] }),
      insecureSkipTlsVerify: cluster["insecure-skip-tls-verify"] === true,
    });
  }

  static fromKubeconfigFile(path: string): KubeClient {
    return KubeClient.fromKubeconfig(readFileSync(path, "utf8"), join(path, ".."));
  }

  /** The pod's service account, as every in-cluster client does. */
  static inCluster(): KubeClient {
    const host = process.env["KUBERNETES_SERVICE_HOST"];
    const port = process.env["KUBERNETES_SERVICE_PORT"] ?? "443";
    if (!host) throw new TypeError("KubeClient: not in a cluster (KUBERNETES_SERVICE_HOST is not set); pass --kubeconfig");
    const server = host.includes(":") ? `https://[${host}]:${port}` : `https://${host}:${port}`;
    return new KubeClient({ server, caPem: readFileSync(join(SERVICE_ACCOUNT_DIR, "ca.crt"), "utf8"), tokenFile: join(SERVICE_ACCOUNT_DIR, "token") });
  }

  /** `path` if given, else $KUBECONFIG, else in-cluster, else ~/.kube/config. */
  static fromDefault(path?: string): KubeClient {
    if (path) return KubeClient.fromKubeconfigFile(path);
    const env = process.env["KUBECONFIG"]?.split(":")[0];
    if (env) return KubeClient.fromKubeconfigFile(env);
    if (process.env["KUBERNETES_SERVICE_HOST"]) return KubeClient.inCluster();
    return KubeClient.fromKubeconfigFile(join(homedir(), ".kube", "config"));
  }

  async close(): Promise<void> {
    this.#agent.destroy();
  }

  #headers(extra: Record<string, string> = {}): Record<string, string> {
    const file = this.#options.tokenFile;
    if (file !== undefined && Date.now() - this.#tokenReadAtMs > 10_000) {
      this.#tokenReadAtMs = Date.now();
      const mtime = statSync(file).mtimeMs;
      if (mtime !== this.#tokenMtimeMs) {
        this.#token = readFileSync(file, "utf8").trim();
        this.#tokenMtimeMs = mtime;
      }
    }
    return { accept: "application/json", ...(this.#token !== undefined && { authorization: `Bearer ${this.#token}` }), ...extra };
  }

  #url(path: string, query: Record<string, string | number | boolean | undefined> = {}): string {
    const url = new URL(`${this.server}${path}`);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    return url.toString();
  }

  async #json<T>(method: "GET" | "PUT", path: string, query: Record<string, string | number | boolean | undefined> = {}, body?: unknown): Promise<T> {
    let res: { status: number; body: Buffer };
    try {
      res = await fetchBuffer(this.#url(path, query), {
        method,
        headers: this.#headers(body === undefined ? {} : { "content-type": "application/json" }),
        ...(body !== undefined && { body: JSON.stringify(body) }),
        agent: this.#agent,
        timeoutMs: this.#options.timeoutMs ?? 30_000,
        maxBodyBytes: 256 * 1024 * 1024,
      });
    } catch (cause) {
      throw new KubeApiError(0, `the API server ${this.server} could not be reached: ${(cause as Error).message}`, undefined, { cause });
    }
    const text = res.body.toString("utf8");
    let parsed: unknown;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      parsed = text;
    }
    if (res.status >= 300) {
      const message = (parsed as { message?: unknown } | undefined)?.message;
      throw new KubeApiError(res.status, `${method} ${path}: ${res.status} ${typeof message === "string" ? message : ""}`.trim(), parsed);
    }
    return parsed as T;
  }

  get<T extends KubeObject>(path: string): Promise<T> {
    return this.#json<T>("GET", path);
  }

  put<T extends KubeObject>(path: string, body: T): Promise<T> {
    return this.#json<T>("PUT", path, {}, body);
  }

  list<T extends KubeObject>(path: string, query: Record<string, string | number | boolean | undefined> = {}): Promise<KubeList<T>> {
    return this.#json<KubeList<T>>("GET", path, query);
  }

  /**
   * Streams watch events until the server ends the watch (resolves) or the connection fails (rejects with
   * KubeApiError). `signal` stops it.
   */
  async watch<T extends KubeObject>(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    onEvent: (type: WatchEventType, object: T) => void,
    signal: AbortSignal,
  ): Promise<void> {
    let res: Awaited<ReturnType<typeof openRequest>>;
    try {
      res = await openRequest(this.#url(path, { ...query, watch: "true" }), { method: "GET", headers: this.#headers(), agent: this.#agent, signal });
    } catch (cause) {
      if (signal.aborted) return;
      throw new KubeApiError(0, `watch ${path}: the API server could not be reached: ${(cause as Error).message}`, undefined, { cause });
    }
    if (res.statusCode !== 200) {
      let text = "";
      for await (const chunk of res as AsyncIterable<Buffer>) text += chunk.toString("utf8");
      throw new KubeApiError(res.statusCode ?? 0, `watch ${path}: ${res.statusCode ?? 0}`, text);
    }
    // A watch that delivered nothing (not even bookmarks) for this long is a dead connection.
    res.socket.setTimeout(((Number(query["timeoutSeconds"]) || 300) + 60) * 1000, () => res.destroy(new Error("watch idle timeout")));
    const lines = createInterface({ input: res, crlfDelay: Infinity });
    try {
      for await (const line of lines) {
        if (line.trim() === "") continue;
        let event: { type?: WatchEventType; object?: T };
        try {
          event = JSON.parse(line) as { type?: WatchEventType; object?: T };
        } catch {
          continue; // a torn line at a broken connection; the stream's end decides what happens next
        }
        if (event.type !== undefined && event.object !== undefined) onEvent(event.type, event.object);
      }
    } catch (cause) {
      if (signal.aborted) return;
      throw new KubeApiError(0, `watch ${path}: the stream broke: ${(cause as Error).message}`, undefined, { cause });
    }
    // Node ends a response cut mid-stream as "aborted" rather than as an error.
    if (!res.complete && !signal.aborted) throw new KubeApiError(0, `watch ${path}: the connection was cut`);
  }
}
