/**
 * The object store behind the emulated API server: objects per resource, one global resourceVersion counter
 * (as etcd's revision), and a bounded history of events per resource from which watches resume and older list
 * snapshots (continue tokens, resourceVersionMatch=Exact) are rebuilt. A watch or snapshot older than the
 * retained history is "expired" — the 410 Gone that informers must handle.
 */
import type { KubeObject } from "./resources";
import { metaOf } from "./resources";

export type StoreEventType = "ADDED" | "MODIFIED" | "DELETED";

export interface StoreEvent {
  type: StoreEventType;
  /** The object after the change (for DELETED: the last state, carrying the deletion's resourceVersion). */
  object: KubeObject;
  /** The object before the change (MODIFIED, DELETED). */
  previous?: KubeObject;
  resourceVersion: number;
}

export type StoreListener = (event: StoreEvent) => void;

interface Bucket {
  objects: Map<string, KubeObject>;
  history: StoreEvent[];
  /** Every event with a resourceVersion above this one is still in `history`. */
  historyStartRv: number;
  listeners: Set<StoreListener>;
}

export class ExpiredError extends Error {
  readonly requestedRv: number;
  readonly oldestRv: number;

  constructor(requestedRv: number, oldestRv: number) {
    super(`too old resource version: ${requestedRv} (${oldestRv})`);
    this.name = "ExpiredError";
    this.requestedRv = requestedRv;
    this.oldestRv = oldestRv;
  }
}

export function objectKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ""}/${name}`;
}

export class Store {
  #rv = 0;
  #historySize: number;
  #buckets = new Map<string, Bucket>();

  constructor(historySize: number) {
    this.#historySize = historySize;
  }

  get resourceVersion(): number {
    return this.#rv;
  }

  #bucket(resource: string): Bucket {
    let b = this.#buckets.get(resource);
    if (!b) {
      b = { objects: new Map(), history: [], historyStartRv: 0, listeners: new Set() };
      this.#buckets.set(resource, b);
    }
    return b;
  }

  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const o = this.#bucket(resource).objects.get(objectKey(namespace, name));
    return o ? structuredClone(o) : undefined;
  }

  /** Current objects, sorted by namespace/name (the order the real server lists in). */
  list(resource: string, namespace?: string): KubeObject[] {
    const out: KubeObject[] = [];
    for (const [key, o] of this.#bucket(resource).objects) {
      if (namespace !== undefined && !key.startsWith(`${namespace}/`)) continue;
      out.push(o);
    }
    return sortByKey(out).map((o) => structuredClone(o));
  }

  /**
   * How many current objects `predicate` accepts, read in place: no copy, so a test or benchmark can poll thousands
   * of objects without the server's own process spending its time cloning them. The predicate must not modify them.
   */
  count(resource: string, predicate: (object: Readonly<KubeObject>) => boolean, namespace?: string): number {
    let n = 0;
    for (const [key, o] of this.#bucket(resource).objects) {
      if (namespace !== undefined && !key.startsWith(`${namespace}/`)) continue;
      if (predicate(o)) n++;
    }
    return n;
  }

  /** Every resource key that currently holds objects. */
  resources(): string[] {
    return [...this.#buckets.entries()].filter(([, b]) => b.objects.size > 0).map(([k]) => k);
  }

  /** Objects as they were at `rv`, rebuilt by undoing later events; throws ExpiredError beyond the history. */
  snapshot(resource: string, rv: number): KubeObject[] {
    const b = this.#bucket(resource);
    if (rv < b.historyStartRv) throw new ExpiredError(rv, b.historyStartRv);
    const objects = new Map(b.objects);
    for (let i = b.history.length - 1; i >= 0; i--) {
      const e = b.history[i] as StoreEvent;
      if (e.resourceVersion <= rv) break;
      const m = metaOf(e.object);
      const key = objectKey(m.namespace, m.name ?? "");
      if (e.type === "ADDED") objects.delete(key);
      else if (e.previous) objects.set(key, e.previous);
    }
    return sortByKey([...objects.values()]).map((o) => structuredClone(o));
  }

  /** Creates or replaces an object: assigns the next resourceVersion, records and publishes the event. */
  write(resource: string, obj: KubeObject): KubeObject {
    const b = this.#bucket(resource);
    const m = metaOf(obj);
    const key = objectKey(m.namespace, m.name ?? "");
    const previous = b.objects.get(key);
    const rv = ++this.#rv;
    const stored = structuredClone(obj);
    metaOf(stored).resourceVersion = String(rv);
    b.objects.set(key, stored);
    const event: StoreEvent = { type: previous ? "MODIFIED" : "ADDED", object: stored, resourceVersion: rv };
    if (previous) event.previous = previous;
    this.#record(b, event);
    return structuredClone(stored);
  }

  /** Removes an object; the DELETED event carries its last state with the deletion's resourceVersion. */
  remove(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const b = this.#bucket(resource);
    const key = objectKey(namespace, name);
    const previous = b.objects.get(key);
    if (!previous) return undefined;
    b.objects.delete(key);
    const rv = ++this.#rv;
    const last = structuredClone(previous);
    metaOf(last).resourceVersion = String(rv);
    this.#record(b, { type: "DELETED", object: last, previous, resourceVersion: rv });
    return structuredClone(last);
  }

  #record(b: Bucket, event: StoreEvent): void {
    b.history.push(event);
    while (b.history.length > this.#historySize) {
      const dropped = b.history.shift() as StoreEvent;
      b.historyStartRv = dropped.resourceVersion;
    }
    for (const l of [...b.listeners]) l(event);
  }

  /**
   * Subscribes to a resource's events after `fromRv`: returns the retained events to replay first, then calls
   * `listener` for each new one. Throws ExpiredError when `fromRv` is older than the history.
   */
  subscribe(resource: string, fromRv: number, listener: StoreListener): { replay: StoreEvent[]; unsubscribe: () => void } {
    const b = this.#bucket(resource);
    if (fromRv < b.historyStartRv) throw new ExpiredError(fromRv, b.historyStartRv);
    const replay = b.history.filter((e) => e.resourceVersion > fromRv);
    b.listeners.add(listener);
    return { replay, unsubscribe: () => b.listeners.delete(listener) };
  }

  /** The retained events of a resource, oldest first (a test control). */
  history(resource: string): StoreEvent[] {
    return structuredClone(this.#bucket(resource).history);
  }

  /**
   * Forgets every object and all history, as a server restarted on an empty etcd. The resourceVersion counter
   * keeps counting so that clients holding older versions get 410 and relist instead of waiting for a future one.
   */
  reset(): void {
    this.#rv++;
    for (const b of this.#buckets.values()) {
      b.objects.clear();
      b.history = [];
      b.historyStartRv = this.#rv;
    }
  }

  /** Drops the retained history of every resource (watches from before now get 410), keeping the objects. */
  compact(): void {
    for (const b of this.#buckets.values()) {
      b.history = [];
      b.historyStartRv = this.#rv;
    }
  }
}

function sortByKey(objects: KubeObject[]): KubeObject[] {
  return objects.sort((a, b) => {
    const ma = metaOf(a);
    const mb = metaOf(b);
    const ka = objectKey(ma.namespace, ma.name ?? "");
    const kb = objectKey(mb.namespace, mb.name ?? "");
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
}
