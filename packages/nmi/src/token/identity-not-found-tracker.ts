import { LRUCache } from "lru-cache";

/**
 * Managed mode has no MIC and no AzureAssignedIdentity to say when an identity was assigned, so the propagation
 * grace starts when this node's IMDS first answered "Identity not found" for the identity as it is now (the key
 * includes its IDs: editing them starts over). A token obtained forgets it. Bounded: the least recently seen
 * entries go first.
 */
export class IdentityNotFoundTracker {
  readonly #since: LRUCache<string, number>;

  constructor(maxEntries = 10_000) {
    this.#since = new LRUCache({ max: maxEntries });
  }

  /** Since when `key` has been "not found", starting now when it was not. */
  notFound(key: string, nowMs: number): number {
    const since = this.#since.get(key);
    if (since !== undefined) return since;
    this.#since.set(key, nowMs);
    return nowMs;
  }

  found(key: string): void {
    this.#since.delete(key);
  }

  get size(): number {
    return this.#since.size;
  }
}
