/**
 * The few Kubernetes REST calls a kubelet and a scheduler make for the topology: create/patch/delete pods and nodes,
 * bind a pod, list and watch nodes. Plain node:http(s) so the topology works against any API server (the testbed's
 * `KubeApiServer` in this process or another one) without a client library.
 */
import type { IncomingMessage } from "node:http";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { NetnsError } from "./errors";

export interface KubeConnection {
  /** API server URL, e.g. `https://10.213.0.1:6443`. */
  url: string;
  /** Bearer token (a user the server knows, e.g. `system:kube-scheduler`); none for an unauthenticated server. */
  token?: string;
  /** PEM of the CA that signed the server's certificate (the testbed CA). */
  caPem?: string;
  /** A request (not a watch) without an answer for this long fails; default 10 s. */
  requestTimeoutMs?: number;
}

export type KubeJson = Record<string, unknown>;

export interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: KubeJson;
}

export class KubeRestClient {
  readonly #base: URL;
  readonly #conn: KubeConnection;

  constructor(connection: KubeConnection) {
    this.#base = new URL(connection.url);
    this.#conn = connection;
  }

  #open(method: string, path: string, body: unknown, contentType: string, timeoutMs?: number): Promise<IncomingMessage> {
    const url = new URL(path, this.#base);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.#conn.token) headers["authorization"] = `Bearer ${this.#conn.token}`;
    if (payload) {
      headers["content-type"] = contentType;
      headers["content-length"] = String(payload.length);
    }
    const req = url.protocol === "https:" ? httpsRequest(url, { method, headers, ...(this.#conn.caPem ? { ca: this.#conn.caPem } : {}) }) : httpRequest(url, { method, headers });
    if (timeoutMs !== undefined) req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    return new Promise((resolve, reject) => {
      req.once("response", resolve);
      req.once("error", (err) =>
        reject(new NetnsError("KUBE_REQUEST_FAILED", `${method} ${url.pathname} to the Kubernetes API at ${this.#base.origin} failed: ${err.message}`, { cause: err, details: { method, path } })),
      );
      req.end(payload);
    });
  }

  /** A JSON request; resolves with the parsed body, rejects with `KUBE_REQUEST_FAILED` for any status >= 300. */
  async call(method: string, path: string, body?: unknown, contentType = "application/json"): Promise<KubeJson> {
    const res = await this.#open(method, path, body, contentType, this.#conn.requestTimeoutMs ?? 10_000);
    let text = "";
    for await (const chunk of res) text += String(chunk);
    let parsed: KubeJson = {};
    try {
      parsed = text ? (JSON.parse(text) as KubeJson) : {};
    } catch {
      // a non-JSON answer (a proxy, a crash page): keep the text for the error below
    }
    const status = res.statusCode ?? 0;
    if (status >= 300) {
      const message = typeof parsed["message"] === "string" ? parsed["message"] : text.slice(0, 200);
      throw new NetnsError("KUBE_REQUEST_FAILED", `${method} ${path} answered ${status}: ${message}`, { details: { statusCode: status, body: parsed, method, path } });
    }
    return parsed;
  }

  /**
   * Streams watch events of `path` (a collection URL) from `resourceVersion` until the server ends the stream or
   * `signal` aborts; `onEvent` is called for each.
   */
  async watch(path: string, resourceVersion: string, onEvent: (e: WatchEvent) => void, signal: AbortSignal): Promise<void> {
    const sep = path.includes("?") ? "&" : "?";
    const res = await this.#open("GET", `${path}${sep}watch=true&allowWatchBookmarks=true&resourceVersion=${encodeURIComponent(resourceVersion)}`, undefined, "");
    if ((res.statusCode ?? 0) >= 300) {
      res.resume();
      throw new NetnsError("KUBE_REQUEST_FAILED", `watch ${path} answered ${res.statusCode}`, { details: { statusCode: res.statusCode, path } });
    }
    const abort = (): void => void res.destroy();
    signal.addEventListener("abort", abort, { once: true });
    let buffered = "";
    try {
      for await (const chunk of res) {
        buffered += String(chunk);
        let nl: number;
        while ((nl = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line) onEvent(JSON.parse(line) as WatchEvent);
        }
      }
    } catch (err) {
      // an aborted or reset stream ends the watch like a server-side timeout; the caller relists
      if (!signal.aborted) throw err;
    } finally {
      signal.removeEventListener("abort", abort);
    }
  }
}
