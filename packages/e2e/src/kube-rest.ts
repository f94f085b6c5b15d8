/**
 * A small REST client for the cluster's API server, as one user (bearer token, CA pinned): create objects, read
 * them, read kubectl's Table form, and watch a collection. The harness and the demo use it the way a person uses
 * kubectl — over HTTPS, so the API server's request log attributes every call to its user.
 */
import { request, type RequestOptions } from "node:https";
import type { IncomingMessage } from "node:http";

export interface KubeObjectLike {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string>; creationTimestamp?: string; [k: string]: unknown };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  [k: string]: unknown;
}

export interface WatchEvent<T = KubeObjectLike> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: T;
}

export class KubeRestError extends Error {
  readonly code = "KUBE_REST_FAILED";
  readonly statusCode: number;
  readonly body: unknown;
  constructor(message: string, statusCode: number, body: unknown) {
    super(message);
    this.name = "KubeRestError";
    this.statusCode = statusCode;
    this.body = body;
  }
}

export interface KubeTable {
  columnDefinitions: { name: string; type: string; format?: string; priority?: number }[];
  rows: { cells: unknown[]; object?: KubeObjectLike }[];
}

export class KubeRest {
  readonly #url: URL;
  readonly #token: string;
  readonly #ca: string;

  constructor(server: string, token: string, caPem: string) {
    this.#url = new URL(server);
    this.#token = token;
    this.#ca = caPem;
  }

  #options(method: string, path: string, headers: Record<string, string>): RequestOptions {
    return {
      method,
      host: this.#url.hostname,
      port: this.#url.port || 443,
      path,
      ca: this.#ca,
      headers: { authorization: `Bearer ${this.#token}`, accept: "application/json", ...headers },
    };
  }

  /** One request; JSON in and out. Throws KubeRestError with the Status body for anything but 2xx. */
  async call<T = KubeObjectLike>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(this.#options(method, path, { ...(payload !== undefined && { "content-type": "application/json" }), ...headers }), (r) => {
        let text = "";
        r.setEncoding("utf8");
        r.on("data", (c: string) => (text += c));
        r.on("end", () => resolve({ status: r.statusCode ?? 0, text }));
        r.on("error", reject);
      });
      req.on("error", reject);
      req.end(payload);
    });
    const parsed: unknown = res.text ? JSON.parse(res.text) : undefined;
    if (res.status < 200 || res.status > 299) {
      const message = (parsed as { message?: string } | undefined)?.message ?? res.text;
      throw new KubeRestError(`${method} ${path}: HTTP ${res.status}: ${message}`, res.status, parsed);
    }
    return parsed as T;
  }

  get<T = KubeObjectLike>(path: string): Promise<T> {
    return this.call<T>("GET", path);
  }

  create<T = KubeObjectLike>(collectionPath: string, object: KubeObjectLike): Promise<T> {
    return this.call<T>("POST", collectionPath, object);
  }

  mergePatch<T = KubeObjectLike>(path: string, patch: unknown): Promise<T> {
    return this.call<T>("PATCH", path, patch, { "content-type": "application/merge-patch+json" });
  }

  delete(path: string): Promise<unknown> {
    return this.call("DELETE", path);
  }

  /** The server-side Table kubectl prints (`kubectl get …`). */
  table(collectionPath: string): Promise<KubeTable> {
    return this.call<KubeTable>("GET", collectionPath, undefined, { accept: "application/json;as=Table;v=v1;g=meta.k8s.io" });
  }

  /**
   * Lists `collectionPath`, hands every item to `onEvent` as ADDED, then watches from the list's resourceVersion
   * until `signal` aborts. Resolves once the list has been delivered and the watch is open.
   */
  async listAndWatch<T extends KubeObjectLike = KubeObjectLike>(collectionPath: string, onEvent: (e: WatchEvent<T>) => void, signal: AbortSignal): Promise<void> {
    const list = await this.get<{ metadata: { resourceVersion: string }; items: T[] }>(collectionPath);
    for (const item of list.items) onEvent({ type: "ADDED", object: item });
    const sep = collectionPath.includes("?") ? "&" : "?";
    const path = `${collectionPath}${sep}watch=1&resourceVersion=${list.metadata.resourceVersion}&allowWatchBookmarks=false`;
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request({ ...this.#options("GET", path, {}), signal }, resolve);
      req.on("error", reject);
      req.end();
    });
    if (res.statusCode !== 200) {
      res.resume();
      throw new KubeRestError(`watch ${collectionPath}: HTTP ${res.statusCode}`, res.statusCode ?? 0, undefined);
    }
    let buffer = "";
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      buffer += chunk;
      for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
        const line = buffer.slice(0, nl).trim();
        buffer = buffer.slice(nl + 1);
        if (line) onEvent(JSON.parse(line) as WatchEvent<T>);
      }
    });
    // an aborted watch is the normal way to end it
    res.on("error", () => undefined);
  }
}
