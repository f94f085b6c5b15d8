import type { KubeConfig } from "@kubernetes/client-node";
import { Agent, request, type Dispatcher } from "undici";
import { KubeApiError } from "../errors";

export interface KubeRequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  /** Default application/json; merge patches pass application/merge-patch+json. */
  contentType?: string;
  signal?: AbortSignal;
}

export interface WatchEvent<T> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: T;
}

/** A Kubernetes Status object, as returned in errors and in watch ERROR events. */
export interface KubeStatus {
  kind?: string;
  code?: number;
  reason?: string;
  message?: string;
}

/**
 * The few REST calls MIC makes, over undici. @kubernetes/client-node's KubeConfig does what it is best at —
 * reading kubeconfig files and in-cluster service-account credentials (server URL, CA, client certificate,
 * token, exec plugins) — and this class turns that into one pooled undici dispatcher, so list/watch streaming,
 * aborts and error mapping stay in one small place.
 */
export class KubeClient {
  readonly server: string;
  readonly #kubeConfig: KubeConfig;
  readonly #dispatcher: Dispatcher;

  private constructor(kubeConfig: KubeConfig, server: string, dispatcher: Dispatcher) {
    this.#kubeConfig = kubeConfig;
    this.server = server.replace(/\/+$/, "");
    this.#dispatcher = dispatcher;
  }

  static async fromKubeConfig(kubeConfig: KubeConfig): Promise<KubeClient> {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error("KubeClient: the kubeconfig has no current cluster; pass --kubeconfig or run in a cluster");
    const tls: Record<string, unknown> = {};
    if (cluster.server.startsWith("https:")) await kubeConfig.applyToHTTPSOptions(tls as never);
    const connect: Record<string, unknown> = {};
    for (const key of ["ca", "cert", "key", "pfx", "passphrase", "rejectUnauthorized", "servername"]) {
      if (tls[key] !== undefined) connect[key] = tls[key];
    }
    const dispatcher = new Agent({ connect, keepAliveTimeout: 30_000, connections: 64 });
    return new KubeClient(kubeConfig, cluster.server, dispatcher);
  }

  async close(): Promise<void> {
    await this.#dispatcher.close();
  }

  async #headers(contentType?: string): Promise<Record<string, string>> {
    // Re-applied per request: tokens from files or exec plugins rotate.
    const options: { headers: Record<string, string> } = { headers: {} };
    if (this.server.startsWith("https:")) {
      await this.#kubeConfig.applyToHTTPSOptions(options as never);
    } else {
      // client-node refuses plain-HTTP servers; a static token is all such a (local, test) server takes.
      const token = this.#kubeConfig.getCurrentUser()?.token;
      if (token) options.headers["authorization"] = `Bearer ${token}`;
    }
    const headers: Record<string, string> = { accept: "application/json", "user-agent": "podidentity-mic" };
    for (const [k, v] of Object.entries(options.headers)) headers[k.toLowerCase()] = String(v);
    if (contentType) headers["content-type"] = contentType;
    return headers;
  }

  #url(path: string, query?: KubeRequestOptions["query"]): string {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    return url.toString();
  }

  async request<T>(method: Dispatcher.HttpMethod, path: string, options: KubeRequestOptions = {}): Promise<T> {
    const hasBody = options.body !== undefined;
    const res = await request(this.#url(path, options.query), {
      method,
      dispatcher: this.#dispatcher,
      headers: await this.#headers(hasBody ? (options.contentType ?? "application/json") : undefined),
      body: hasBody ? JSON.stringify(options.body) : undefined,
      signal: options.signal,
    });
    const text = await res.body.text();
    if (res.statusCode >= 400) throw toKubeError(res.statusCode, text, method, path);
    return (text.length > 0 ? JSON.parse(text) : undefined) as T;
  }

  /** Streams watch events until the server ends the watch, the signal aborts, or the connection breaks. */
  async *watch<T>(path: string, query: KubeRequestOptions["query"], signal: AbortSignal): AsyncGenerator<WatchEvent<T>> {
    const res = await request(this.#url(path, { ...query, watch: "true" }), {
      method: "GET",
      dispatcher: this.#dispatcher,
      headers: await this.#headers(),
      signal,
      bodyTimeout: 0,
    });
    if (res.statusCode >= 400) throw toKubeError(res.statusCode, await res.body.text(), "GET", path);
    let buffer = "";
    res.body.setEncoding("utf8");
    for await (const chunk of res.body as AsyncIterable<string>) {
      buffer += chunk;
      let newline: number;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (line.length > 0) yield JSON.parse(line) as WatchEvent<T>;
      }
    }
  }
}

function toKubeError(statusCode: number, text: string, method: string, path: string): KubeApiError {
  let status: KubeStatus;
  try {
    status = JSON.parse(text) as KubeStatus;
  } catch {
    // Not a Status (a proxy's HTML page, say): keep the text as the message.
    status = { message: text.slice(0, 200) };
  }
  return new KubeApiError(statusCode, status.reason ?? String(statusCode), status.message ?? "", method, path);
}

export function isNotFound(error: unknown): boolean {
  return error instanceof KubeApiError && error.statusCode === 404;
}

export function isConflict(error: unknown): boolean {
  return error instanceof KubeApiError && error.statusCode === 409;
}
