import { EventEmitter } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { KubeClient } from "./kube-client";
import { KubeApiError } from "./kube-client";
import type { KubeObject } from "./kube-types";

export const DEFAULT_INFORMER_OPTIONS = {
  minBackoffMs: 1_000,
  maxBackoffMs: 30_000,
  /** Server-side watch timeout; a fresh watch from the last resourceVersion follows at once. */
  watchTimeoutSeconds: 300,
} as const;

export interface ResourceInformerOptions {
  /** For logs and metrics, e.g. `pods`. */
  name: string;
  client: KubeClient;
  /** The collection path, e.g. `/api/v1/pods`. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  logger: Logger;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  watchTimeoutSeconds?: number;
  /** Called on every list/watch failure (metrics). */
  onError?: (error: unknown) => void;
}

export interface ResourceInformerEvents<T> {
  add: [T];
  update: [T];
  delete: [T];
  /** After any of the three. */
  change: [];
}

const keyOf = (o: KubeObject): string => `${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`;

/**
 * One resource kept in memory by list-then-watch, as kubernetes-client's ListWatch and client-go's reflector:
 * list, watch from the list's resourceVersion, resume from the last seen one when a watch ends, relist on 410
 * Gone, back off 1–30 s on failures (the cache keeps serving what it had meanwhile). `start()` resolves once,
 * after the first successful list; `synced` stays true from then on.
 */
export class ResourceInformer<T extends KubeObject> extends EventEmitter<ResourceInformerEvents<T>> {
  readonly name: string;
  readonly #o: ResourceInformerOptions;
  readonly #objects = new Map<string, T>();
  readonly #stop = new AbortController();
  #resourceVersion = "";
  #synced = false;
  #backoffMs: number;
  #loop: Promise<void> | undefined;

  constructor(options: ResourceInformerOptions) {
    super();
    this.setMaxListeners(0);
    this.name = options.name;
    this.#o = options;
    this.#backoffMs = options.minBackoffMs ?? DEFAULT_INFORMER_OPTIONS.minBackoffMs;
  }

  get synced(): boolean {
    return this.#synced;
  }

  list(): T[] {
    return [...this.#objects.values()];
  }

  get(name: string, namespace = ""): T | undefined {
    return this.#objects.get(`${namespace}/${name}`);
  }

  start(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#loop = this.#run(resolve).then(() => {
        if (!this.#synced) reject(new Error(`ResourceInformer(${this.name}): stopped before the first sync`));
      }, reject);
    });
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }

  get #query(): Record<string, string | undefined> {
    return { labelSelector: this.#o.labelSelector, fieldSelector: this.#o.fieldSelector };
  }

  async #run(onSynced: () => void): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      try {
        if (this.#resourceVersion === "") {
          const list = await this.#o.client.list<T>(this.#o.path, this.#query);
          this.#replace(list.items);
          this.#resourceVersion = list.metadata?.resourceVersion ?? "";
          if (!this.#synced) {
            this.#synced = true;
            this.#o.logger.debug({ informer: this.name, items: this.#objects.size }, "informer synced");
            onSynced();
          }
        }
        const timeoutSeconds = this.#o.watchTimeoutSeconds ?? DEFAULT_INFORMER_OPTIONS.watchTimeoutSeconds;
        await this.#o.client.watch<T>(
          this.#o.path,
          { ...this.#query, resourceVersion: this.#resourceVersion, allowWatchBookmarks: true, timeoutSeconds: Math.round(timeoutSeconds * (1 + Math.random())) },
          (type, object) => this.#onEvent(type, object),
          signal,
        );
        // The server ended the watch (timeout): resume from the last resourceVersion at once.
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof KubeApiError && error.statusCode === 410) {
          this.#resourceVersion = "";
          continue;
        }
        this.#o.onError?.(error);
        this.#o.logger.warn({ informer: this.name, statusCode: (error as KubeApiError).statusCode, err: (error as Error).message }, "informer list/watch failed; retrying with backoff");
        await sleep(this.#backoffMs, undefined, { signal }).catch(() => undefined);
        this.#backoffMs = Math.min(this.#backoffMs * 2, this.#o.maxBackoffMs ?? DEFAULT_INFORMER_OPTIONS.maxBackoffMs);
      }
    }
  }

  #onEvent(type: string, object: T): void {
    if (type === "ERROR") {
      // A Status object: 410 Gone (or Expired) means the resourceVersion is too old; relist.
      const code = (object as { code?: number }).code;
      if (code === 410) this.#resourceVersion = "";
      return;
    }
    const rv = object.metadata?.resourceVersion;
    if (rv !== undefined) this.#resourceVersion = rv;
    this.#backoffMs = this.#o.minBackoffMs ?? DEFAULT_INFORMER_OPTIONS.minBackoffMs;
    if (type === "BOOKMARK") return;
    const key = keyOf(object);
    if (type === "DELETED") {
      if (this.#objects.delete(key)) this.#emit("delete", object);
      return;
    }
    const existed = this.#objects.has(key);
    this.#objects.set(key, object);
    this.#emit(existed ? "update" : "add", object);
  }

  /** A relist: objects gone from the list are deleted, the others added or updated. */
  #replace(items: T[]): void {
    const next = new Map(items.map((o) => [keyOf(o), o] as const));
    for (const [key, old] of this.#objects) {
      if (!next.has(key)) {
        this.#objects.delete(key);
        this.#emit("delete", old);
      }
    }
    for (const [key, object] of next) {
      const old = this.#objects.get(key);
      this.#objects.set(key, object);
      if (old === undefined) this.#emit("add", object);
      else if (old.metadata?.resourceVersion !== object.metadata?.resourceVersion) this.#emit("update", object);
    }
  }

  #emit(kind: "add" | "update" | "delete", object: T): void {
    this.emit(kind, object);
    this.emit("change");
  }
}
