/**
 * One watch connection: newline-delimited JSON events `{"type","object"}` on an HTTP 200 chunked response, as
 * the API server streams them. Starts with synthetic ADDED events (no resourceVersion, "0", or
 * sendInitialEvents) or replays the retained history after the given resourceVersion; a version older than the
 * history ends the stream with an ERROR event carrying a 410 Expired Status. Label/field selectors turn updates
 * that cross the selector into DELETED/ADDED. Bookmarks are sent when asked for; timeoutSeconds ends the stream.
 */
import type { ServerResponse } from "node:http";
import type { ListOptions } from "./list-options";
import { objectMatches } from "./list-options";
import type { KubeObject, ResourceDef } from "./resources";
import { apiVersionOf, metaOf, storageKey } from "./resources";
import type { Store, StoreEvent } from "./store";
import { ExpiredError } from "./store";
import { expired, timeoutError } from "./status-errors";
import type { KubeStatusError } from "./status-errors";

export interface WatchEventOut {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: Record<string, unknown>;
}

export interface WatchSessionOptions {
  def: ResourceDef;
  namespace: string | undefined;
  options: ListOptions;
  timeoutMs: number;
  bookmarkIntervalMs: number;
  present: (obj: KubeObject) => Record<string, unknown>;
  /** Called once when the stream ends, for whatever reason. */
  onClose: (session: WatchSession) => void;
}

export const INITIAL_EVENTS_END_ANNOTATION = "k8s.io/initial-events-end";

export class WatchSession {
  readonly #store: Store;
  readonly #res: ServerResponse;
  readonly #opts: WatchSessionOptions;
  #unsubscribe: (() => void) | undefined;
  #timers: NodeJS.Timeout[] = [];
  #closed = false;

  constructor(store: Store, res: ServerResponse, opts: WatchSessionOptions) {
    this.#store = store;
    this.#res = res;
    this.#opts = opts;
  }

  get def(): ResourceDef {
    return this.#opts.def;
  }

  /** Writes the response head and the initial events, then follows the store. */
  start(): void {
    const { options } = this.#opts;
    if (this.#res.destroyed) {
      // The client went away while the request waited (injected latency): nothing to stream to.
      this.close(false);
      return;
    }
    // A write racing a connection reset surfaces as an 'error' on the response; it only means the stream is over.
    this.#res.on("error", () => this.close(false));
    this.#res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "no-cache, private" });
    this.#res.flushHeaders();
    this.#res.on("close", () => this.close(false));
    const key = storageKey(this.#opts.def);
    const rv = options.resourceVersion;
    const initial = options.sendInitialEvents ?? (rv === undefined || rv === 0);
    try {
      if (initial) {
        const fromRv = this.#store.resourceVersion;
        for (const o of this.#store.list(key)) if (this.#matches(o)) this.#send({ type: "ADDED", object: this.#opts.present(o) });
        if (options.sendInitialEvents) this.#bookmark(String(fromRv), true);
        this.#follow(key, fromRv);
      } else {
        if (rv !== undefined && rv > this.#store.resourceVersion) {
          this.#error(timeoutError(`Too large resource version: ${rv}, current: ${this.#store.resourceVersion}`));
          return;
        }
        this.#follow(key, rv ?? 0);
      }
    } catch (err) {
      if (!(err instanceof ExpiredError)) throw err;
      this.#error(expired(`too old resource version: ${err.requestedRv} (${err.oldestRv})`));
      return;
    }
    if (this.#closed) return;
    this.#timers.push(setTimeout(() => this.close(true), this.#opts.timeoutMs));
    if (options.allowWatchBookmarks) {
      const t = setInterval(() => this.bookmark(), this.#opts.bookmarkIntervalMs);
      this.#timers.push(t);
    }
  }

  #follow(key: string, fromRv: number): void {
    const { replay, unsubscribe } = this.#store.subscribe(key, fromRv, (e) => this.#onEvent(e));
    this.#unsubscribe = unsubscribe;
    for (const e of replay) this.#onEvent(e);
  }

  #matches(o: KubeObject): boolean {
    return objectMatches(this.#opts.def, this.#opts.options, this.#opts.def.namespaced ? this.#opts.namespace : undefined, o);
  }

  #onEvent(e: StoreEvent): void {
    if (this.#closed) return;
    const now = this.#matches(e.object);
    const before = e.previous !== undefined && this.#matches(e.previous);
    const present = this.#opts.present;
    if (e.type === "ADDED") {
      if (now) this.#send({ type: "ADDED", object: present(e.object) });
    } else if (e.type === "DELETED") {
      if (before || now) this.#send({ type: "DELETED", object: present(e.object) });
    } else if (now && before) {
      this.#send({ type: "MODIFIED", object: present(e.object) });
    } else if (now) {
      this.#send({ type: "ADDED", object: present(e.object) });
    } else if (before && e.previous) {
      // The object left the selector: the watcher sees it deleted, in its last matching state but at this version.
      const last = structuredClone(e.previous);
      metaOf(last).resourceVersion = String(e.resourceVersion);
      this.#send({ type: "DELETED", object: present(last) });
    }
  }

  /** Sends a BOOKMARK with the current resourceVersion, if the client allowed bookmarks. */
  bookmark(): void {
    if (this.#closed || !this.#opts.options.allowWatchBookmarks) return;
    this.#bookmark(String(this.#store.resourceVersion), false);
  }

  #bookmark(rv: string, initialEnd: boolean): void {
    const metadata: Record<string, unknown> = { resourceVersion: rv, creationTimestamp: null };
    if (initialEnd) metadata["annotations"] = { [INITIAL_EVENTS_END_ANNOTATION]: "true" };
    this.#send({ type: "BOOKMARK", object: { kind: this.#opts.def.kind, apiVersion: apiVersionOf(this.#opts.def), metadata } });
  }

  #error(err: KubeStatusError): void {
    this.#send({ type: "ERROR", object: err.toStatus() as unknown as Record<string, unknown> });
    this.close(true);
  }

  #send(event: WatchEventOut): void {
    if (this.#closed || this.#res.destroyed) return;
    this.#res.write(`${JSON.stringify(event)}\n`);
  }

  /** Ends the stream: cleanly (end of the chunked body) or abruptly (connection reset). */
  close(clean: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe?.();
    for (const t of this.#timers) clearTimeout(t);
    if (clean) this.#res.end();
    else this.#res.destroy();
    this.#opts.onClose(this);
  }
}
