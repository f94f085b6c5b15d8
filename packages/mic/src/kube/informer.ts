import type { Logger } from "pino";
import type { Clock } from "../clock";
import { KubeApiError, isAbortError } from "../errors";
import type { KubeClient, KubeStatus, WatchEvent } from "./kube-client";

export interface KubeObjectLike {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; [key: string]: unknown };
}

export interface InformerHandlers<T> {
  /** `old` is undefined for an add. */
  onUpsert?(object: T, old: T | undefined): void;
  onDelete?(object: T): void;
}

export interface InformerOptions {
  /** Collection path, e.g. `/api/v1/pods` or `/apis/aadpodidentity.k8s.io/v1/azureassignedidentities`. */
  path: string;
  labelSelector?: string;
  clock: Clock;
  logger: Logger;
  /** Backoff after failures: 1 s doubling to 30 s by default. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  pageSize?: number;
}

interface KubeList<T> {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: T[];
}

export function objectKey(object: KubeObjectLike): string {
  const m = object.metadata ?? {};
  return m.namespace ? `${m.namespace}/${m.name ?? ""}` : (m.name ?? "");
}

/**
 * List then watch one collection into a local store: watches resume from the last resourceVersion seen
 * (bookmarks included), a 410 Gone relists and reports the difference as upserts/deletes, failures back off
 * 1–30 s. `synced` resolves exactly once, after the first complete list.
 */
export class Informer<T extends KubeObjectLike> {
  readonly store = new Map<string, T>();
  readonly synced: Promise<void>;
  #resolveSynced!: () => void;
  #hasSynced = false;
  #resourceVersion: string | undefined;
  readonly #abort = new AbortController();
  #loop: Promise<void> | undefined;
  readonly #client: KubeClient;
  readonly #options: InformerOptions;
  readonly #handlers: InformerHandlers<T>;

  constructor(client: KubeClient, options: InformerOptions, handlers: InformerHandlers<T>) {
    this.#client = client;
    this.#options = options;
    this.#handlers = handlers;
    this.synced = new Promise((resolve) => (this.#resolveSynced = resolve));
  }

  get hasSynced(): boolean {
    return this.#hasSynced;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }

  /**
   * Applies an object this process just wrote (the API server's response), so decisions taken before the
   * watch event arrives already see it. Older versions than the stored one are ignored.
   */
  applyLocal(object: T): void {
    const key = objectKey(object);
    const old = this.store.get(key);
    if (old && compareVersions(old.metadata?.resourceVersion, object.metadata?.resourceVersion) >= 0) return;
    this.store.set(key, object);
    this.#handlers.onUpsert?.(object, old);
  }

  /** Removes an object this process just deleted for good. */
  applyLocalDelete(key: string): void {
    const old = this.store.get(key);
    if (!old) return;
    this.store.delete(key);
    this.#handlers.onDelete?.(old);
  }

  async #run(): Promise<void> {
    const { clock, logger } = this.#options;
    const initial = this.#options.initialBackoffMs ?? 1_000;
    const max = this.#options.maxBackoffMs ?? 30_000;
    let backoff = initial;
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      try {
        if (this.#resourceVersion === undefined) await this.#list(signal);
        await this.#watch(signal);
        backoff = initial;
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof KubeApiError && error.statusCode === 410) {
          // Our resourceVersion fell out of the server's history: relist at once.
          this.#resourceVersion = undefined;
          continue;
        }
        logger.warn({ err: describe(error), path: this.#options.path, retryInMs: backoff }, "list/watch failed; retrying");
        await clock.sleep(backoff, signal);
        backoff = Math.min(max, backoff * 2);
      }
    }
  }

  async #list(signal: AbortSignal): Promise<void> {
    const seen = new Map<string, T>();
    let continueToken: string | undefined;
    let resourceVersion: string | undefined;
    do {
      const page = await this.#client.request<KubeList<T>>("GET", this.#options.path, {
        query: { labelSelector: this.#options.labelSelector, limit: this.#options.pageSize ?? 500, continue: continueToken },
        signal,
      });
      for (const item of page.items ?? []) seen.set(objectKey(item), item);
      continueToken = page.metadata?.continue || undefined;
      resourceVersion = page.metadata?.resourceVersion;
    } while (continueToken);
    for (const [key, old] of [...this.store]) {
      if (!seen.has(key)) {
        this.store.delete(key);
        this.#handlers.onDelete?.(old);
      }
    }
    for (const [key, object] of seen) {
      const old = this.store.get(key);
      if (old && old.metadata?.resourceVersion === object.metadata?.resourceVersion) continue;
      this.store.set(key, object);
      this.#handlers.onUpsert?.(object, old);
    }
    this.#resourceVersion = resourceVersion ?? "0";
    if (!this.#hasSynced) {
      this.#hasSynced = true;
      this.#resolveSynced();
    }
  }

  async #watch(signal: AbortSignal): Promise<void> {
    const timeoutSeconds = 240 + Math.floor(Math.random() * 120);
    const events = this.#client.watch<T>(
      this.#options.path,
      {
        labelSelector: this.#options.labelSelector,
        resourceVersion: this.#resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds,
      },
      signal,
    );
    try {
      for await (const event of events) this.#apply(event);
    } catch (error) {
      if (isAbortError(error) && signal.aborted) return;
      throw error;
    }
  }

  #apply(event: WatchEvent<T>): void {
    if (event.type === "ERROR") {
      const status = event.object as unknown as KubeStatus;
      throw new KubeApiError(status.code ?? 500, status.reason ?? "WatchError", status.message ?? "", "WATCH", this.#options.path);
    }
    const rv = event.object.metadata?.resourceVersion;
    if (rv !== undefined) this.#resourceVersion = rv;
    if (event.type === "BOOKMARK") return;
    const key = objectKey(event.object);
    const old = this.store.get(key);
    if (event.type === "DELETED") {
      // A deletion older than what we hold (we re-created the object and applied our write's response first).
      if (!old || compareVersions(old.metadata?.resourceVersion, rv) > 0) return;
      this.store.delete(key);
      this.#handlers.onDelete?.(event.object);
      return;
    }
    if (old && compareVersions(old.metadata?.resourceVersion, rv) >= 0) return;
    this.store.set(key, event.object);
    this.#handlers.onUpsert?.(event.object, old);
  }
}

/** resourceVersions are opaque, but etcd's (and the testbed's) are integers; compare them when they are. */
function compareVersions(a: string | undefined, b: string | undefined): number {
  if (a === undefined || b === undefined) return -1;
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) {
    const x = BigInt(a);
    const y = BigInt(b);
    return x === y ? 0 : x < y ? -1 : 1;
  }
  return a === b ? 0 : -1;
}

export function describe(error: unknown): Record<string, unknown> {
  if (error instanceof Error) return { type: error.name, message: error.message, code: (error as { code?: unknown }).code };
  return { message: String(error) };
}
