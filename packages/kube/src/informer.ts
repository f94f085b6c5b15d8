import type { Clock, TimerHandle } from "./clock";
import { systemClock } from "./clock";
import { KubeApiError } from "./errors";
import type { KubeClient } from "./kube-client";
import type { KubeObject, WatchEvent } from "./types";

export const DEFAULT_INFORMER_OPTIONS = {
  /** Items per list page (`limit`); the rest follows with `continue`. */
  pageSize: 500,
  /** Backoff after a failure: doubles from min to max, back to min after a success (client-go: 1–30 s). */
  minBackoffMs: 1_000,
  maxBackoffMs: 30_000,
  /** Server-side watch timeout, spread by up to +20 % so many informers do not re-watch at once. */
  watchTimeoutSeconds: 300,
} as const;

export interface InformerOptions<T, P> {
  /** The collection path, e.g. `/api/v1/pods` or `/apis/aadpodidentity.k8s.io/v1/azureassignedidentities`. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /**
   * What the store keeps of each object (client-go's transform): the memory lever — a daemon that reads three
   * fields of a pod keeps three fields. Called once per received object version. Default: the object itself.
   */
  project?: (object: T) => P;
  clock?: Clock;
  pageSize?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  watchTimeoutSeconds?: number;
  /** No byte on a watch for this long → reconnect. Default: the watch's timeout plus the client's grace. */
  idleTimeoutMs?: number;
  /** Every failure of a list or watch (the informer retries after `retryInMs`), and every handler exception. */
  onError?: (error: unknown, retryInMs: number | undefined) => void;
  /** For the timeoutSeconds spread; default Math.random. */
  random?: () => number;
}

export interface InformerHandlers<P> {
  add?(object: P): void;
  update?(object: P, old: P): void;
  /** The object's last state (from the DELETED event, or the stored one when a relist found it gone). */
  delete?(object: P): void;
}

/** Counters a caller (or a test) can read to see what the informer did. */
export interface InformerStats {
  /** Complete lists (each possibly several pages). */
  lists: number;
  pages: number;
  /** Watches opened. */
  watches: number;
  /** Lists caused by 410 Gone. */
  relists: number;
  /** Failures followed by a backoff. */
  failures: number;
}

interface Entry<P> {
  resourceVersion: string | undefined;
  value: P;
}

/** client-go's MetaNamespaceKeyFunc: `namespace/name`, or `name` for cluster-scoped objects. */
export function objectKey(object: { metadata?: { name?: string; namespace?: string } | undefined }): string {
  const m = object.metadata ?? {};
  return m.namespace ? `${m.namespace}/${m.name ?? ""}` : (m.name ?? "");
}

/**
 * One collection kept in memory by list-then-watch, as client-go's reflector: a paged list, a watch from the list's
 * resourceVersion with bookmarks, resumed from the last resourceVersion seen when it ends, a relist on 410 Gone
 * (objects gone meanwhile are reported deleted), and after any other failure a retry with exponential backoff on
 * the injected clock — it never stops on its own. Events older than the stored version are ignored, so a write's
 * own answer applied with `applyLocal` is not undone by its late watch event.
 */
export class Informer<T extends KubeObject, P = T> {
  readonly path: string;
  readonly synced: Promise<void>;
  readonly stats: InformerStats = { lists: 0, pages: 0, watches: 0, relists: 0, failures: 0 };
  readonly #client: KubeClient;
  readonly #o: Required<Omit<InformerOptions<T, P>, "labelSelector" | "fieldSelector" | "idleTimeoutMs" | "onError">> &
    Pick<InformerOptions<T, P>, "labelSelector" | "fieldSelector" | "idleTimeoutMs" | "onError">;
  readonly #store = new Map<string, Entry<P>>();
  readonly #handlers: InformerHandlers<P>[] = [];
  readonly #abort = new AbortController();
  #resolveSynced!: () => void;
  #rejectSynced!: (error: Error) => void;
  #hasSynced = false;
  #resourceVersion: string | undefined;
  #loop: Promise<void> | undefined;
  #sleeping: { timer: TimerHandle; wake: () => void } | undefined;
  /** The next failure's wait; back to minBackoffMs after a complete list or a watch event. */
  #backoffMs: number;

  constructor(client: KubeClient, options: InformerOptions<T, P>) {
    const d = DEFAULT_INFORMER_OPTIONS;
    this.#client = client;
    this.path = options.path;
    this.#o = {
      path: options.path,
      project: options.project ?? ((o: T) => o as unknown as P),
      clock: options.clock ?? systemClock,
      pageSize: options.pageSize ?? d.pageSize,
      minBackoffMs: options.minBackoffMs ?? d.minBackoffMs,
      maxBackoffMs: options.maxBackoffMs ?? d.maxBackoffMs,
      watchTimeoutSeconds: options.watchTimeoutSeconds ?? d.watchTimeoutSeconds,
      random: options.random ?? Math.random,
      labelSelector: options.labelSelector,
      fieldSelector: options.fieldSelector,
      idleTimeoutMs: options.idleTimeoutMs,
      onError: options.onError,
    };
    for (const key of ["pageSize", "minBackoffMs", "maxBackoffMs", "watchTimeoutSeconds"] as const) {
      const v = this.#o[key];
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`Informer(${this.path}): ${key} must be a positive integer, got ${v}`);
    }
    if (this.#o.maxBackoffMs < this.#o.minBackoffMs) throw new RangeError(`Informer(${this.path}): maxBackoffMs must be >= minBackoffMs`);
    this.#backoffMs = this.#o.minBackoffMs;
    this.synced = new Promise<void>((resolve, reject) => {
      this.#resolveSynced = resolve;
      this.#rejectSynced = reject;
    });
    // Stopping before the first sync rejects `synced`; a caller that never awaits it must not crash the process.
    this.synced.catch(() => undefined);
  }

  get hasSynced(): boolean {
    return this.#hasSynced;
  }

  get size(): number {
    return this.#store.size;
  }

  /** The store as a read-only Map by key (a live view, not a copy). */
  readonly store: ReadonlyMap<string, P> = new StoreView(this.#store);

  /** By key: `namespace/name`, or `name` for cluster-scoped objects. */
  get(key: string): P | undefined {
    return this.#store.get(key)?.value;
  }

  list(): P[] {
    return [...this.#store.values()].map((e) => e.value);
  }

  keys(): string[] {
    return [...this.#store.keys()];
  }

  /** Adds handlers; returns a function that removes them. Handlers run synchronously, in registration order. */
  addHandlers(handlers: InformerHandlers<P>): () => void {
    this.#handlers.push(handlers);
    return () => {
      const i = this.#handlers.indexOf(handlers);
      if (i >= 0) this.#handlers.splice(i, 1);
    };
  }

  /** Starts listing and watching (once; later calls do nothing). */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Ends the watch, any request in flight and any backoff wait; resolves when nothing is left running. */
  async stop(): Promise<void> {
    this.#abort.abort();
    const sleeping = this.#sleeping;
    if (sleeping !== undefined) {
      sleeping.timer.clear();
      sleeping.wake();
    }
    await this.#loop;
    if (!this.#hasSynced) this.#rejectSynced(new Error(`Informer(${this.path}): stopped before the first list completed`));
  }

  /**
   * Applies an object this process just wrote (the API server's answer), so decisions taken before its watch event
   * arrives already see it. Versions older than the stored one are ignored.
   */
  applyLocal(object: T): void {
    this.#upsert(object);
  }

  /** Removes an object this process just deleted for good. */
  applyLocalDelete(key: string): void {
    const old = this.#store.get(key);
    if (old === undefined) return;
    this.#store.delete(key);
    this.#notify("delete", old.value);
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    let gone = 0;
    let shortEmptyEnds = 0;
    while (!signal.aborted) {
      try {
        if (this.#resourceVersion === undefined) await this.#list(signal);
        if (signal.aborted) return;
        const startedAt = this.#o.clock.now();
        const events = await this.#watch(signal);
        // The server ended the watch (its timeout, or a restart that closed it cleanly): resume from the last
        // resourceVersion at once — unless watches keep ending within a second with nothing in them, which a broken
        // proxy does (client-go's "very short watch" rule; here the second one in a row backs off).
        shortEmptyEnds = events === 0 && this.#o.clock.now() - startedAt < 1_000 ? shortEmptyEnds + 1 : 0;
        gone = 0;
        if (shortEmptyEnds < 2) continue;
        throw new KubeApiError({ status: 0, reason: "ShortWatch", message: "watches keep ending within a second without events", method: "WATCH", path: this.path });
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof KubeApiError && error.isGone && gone === 0) {
          // Our resourceVersion fell out of the server's history: list again now (once; a second 410 in a row backs off).
          gone++;
          this.#resourceVersion = undefined;
          this.stats.relists++;
          continue;
        }
        if (error instanceof KubeApiError && error.isGone) this.#resourceVersion = undefined;
        this.stats.failures++;
        const waitMs = this.#backoffMs;
        this.#o.onError?.(error, waitMs);
        this.#backoffMs = Math.min(this.#o.maxBackoffMs, waitMs * 2);
        await this.#sleep(waitMs);
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        this.#sleeping = undefined;
        resolve();
      };
      this.#sleeping = { timer: this.#o.clock.setTimeout(wake, ms), wake };
    });
  }

  get #selectors(): Record<string, string | undefined> {
    return { labelSelector: this.#o.labelSelector, fieldSelector: this.#o.fieldSelector };
  }

  async #list(signal: AbortSignal): Promise<void> {
    const seen = new Map<string, Entry<P>>();
    let continueToken: string | undefined;
    let resourceVersion: string | undefined;
    do {
      const page = await this.#client.list<T>(this.path, { query: { ...this.#selectors, limit: this.#o.pageSize, continue: continueToken }, signal });
      this.stats.pages++;
      // Projected page by page: a large list never sits in memory whole.
      for (const item of page.items ?? []) seen.set(objectKey(item), { resourceVersion: item.metadata?.resourceVersion, value: this.#o.project(item) });
      continueToken = page.metadata?.continue || undefined;
      resourceVersion = page.metadata?.resourceVersion;
    } while (continueToken !== undefined);
    for (const [key, old] of [...this.#store]) {
      if (seen.has(key)) continue;
      this.#store.delete(key);
      this.#notify("delete", old.value);
    }
    for (const [key, entry] of seen) {
      const old = this.#store.get(key);
      if (old !== undefined && old.resourceVersion === entry.resourceVersion) continue;
      this.#store.set(key, entry);
      if (old === undefined) this.#notify("add", entry.value);
      else this.#notify("update", entry.value, old.value);
    }
    this.#resourceVersion = resourceVersion ?? "0";
    this.stats.lists++;
    this.#backoffMs = this.#o.minBackoffMs;
    if (!this.#hasSynced) {
      this.#hasSynced = true;
      this.#resolveSynced();
    }
  }

  /** One watch until it ends cleanly (resolves with its event count) or fails (rejects). */
  async #watch(signal: AbortSignal): Promise<number> {
    const timeoutSeconds = Math.round(this.#o.watchTimeoutSeconds * (1 + 0.2 * this.#o.random()));
    this.stats.watches++;
    let events = 0;
    const stream = this.#client.watch<T>(this.path, {
      query: { ...this.#selectors, resourceVersion: this.#resourceVersion, allowWatchBookmarks: true, timeoutSeconds },
      signal,
      ...(this.#o.idleTimeoutMs !== undefined && { idleTimeoutMs: this.#o.idleTimeoutMs }),
    });
    for await (const event of stream) {
      events++;
      this.#apply(event);
    }
    return events;
  }

  #apply(event: WatchEvent<T>): void {
    this.#backoffMs = this.#o.minBackoffMs;
    const rv = event.object.metadata?.resourceVersion;
    if (rv !== undefined) this.#resourceVersion = rv;
    if (event.type === "BOOKMARK") return;
    if (event.type === "DELETED") {
      const key = objectKey(event.object);
      const old = this.#store.get(key);
      // Unknown, or older than what we hold (re-created, and our write's answer applied first).
      if (old === undefined || compareVersions(old.resourceVersion, rv) > 0) return;
      this.#store.delete(key);
      this.#notify("delete", this.#o.project(event.object));
      return;
    }
    this.#upsert(event.object);
  }

  #upsert(object: T): void {
    const key = objectKey(object);
    const rv = object.metadata?.resourceVersion;
    const old = this.#store.get(key);
    if (old !== undefined && compareVersions(old.resourceVersion, rv) >= 0) return;
    const entry = { resourceVersion: rv, value: this.#o.project(object) };
    this.#store.set(key, entry);
    if (old === undefined) this.#notify("add", entry.value);
    else this.#notify("update", entry.value, old.value);
  }

  #notify(kind: "add" | "update" | "delete", object: P, old?: P): void {
    for (const h of this.#handlers) {
      try {
        if (kind === "add") h.add?.(object);
        else if (kind === "update") h.update?.(object, old as P);
        else h.delete?.(object);
      } catch (error) {
        // A consumer's bug must not stop the informer (nor skip the other handlers): report it and go on.
        this.#o.onError?.(error, undefined);
      }
    }
  }
}

/** A ReadonlyMap over the entries' values, so consumers read the store without the informer's bookkeeping. */
class StoreView<P> implements ReadonlyMap<string, P> {
  readonly #entries: Map<string, Entry<P>>;

  constructor(entries: Map<string, Entry<P>>) {
    this.#entries = entries;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: string): P | undefined {
    return this.#entries.get(key)?.value;
  }

  has(key: string): boolean {
    return this.#entries.has(key);
  }

  keys(): MapIterator<string> {
    return this.#entries.keys();
  }

  *values(): MapIterator<P> {
    for (const e of this.#entries.values()) yield e.value;
  }

  *entries(): MapIterator<[string, P]> {
    for (const [k, e] of this.#entries) yield [k, e.value];
  }

  [Symbol.iterator](): MapIterator<[string, P]> {
    return this.entries();
  }

  forEach(callback: (value: P, key: string, map: ReadonlyMap<string, P>) => void, thisArg?: unknown): void {
    for (const [k, e] of this.#entries) callback.call(thisArg, e.value, k, this);
  }
}

/** resourceVersions are opaque, but etcd's (and the testbed's) are integers: compare them when both are. */
export function compareVersions(a: string | undefined, b: string | undefined): number {
  if (a === undefined || b === undefined) return -1;
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) {
    const x = BigInt(a);
    const y = BigInt(b);
    return x === y ? 0 : x < y ? -1 : 1;
  }
  return a === b ? 0 : -1;
}
