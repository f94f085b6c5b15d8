import type { Clock } from "../clock";

export interface WriteBudgetOptions {
  /** Largest burst of PATCHes per VM/VMSS (Azure compute: 12). */
  capacity: number;
  /** Refill per minute (Azure compute: 4 VMSS updates per minute per resource). */
  refillPerMinute: number;
}

/**
 * A token bucket per VM/VMSS, so MIC stays under Azure's per-resource write limit instead of discovering it
 * through 429s (AAD#676: 4,000 PATCHes in 1.5 h). A 429's Retry-After also blocks that resource's writes.
 */
export class WriteBudget {
  readonly #options: WriteBudgetOptions;
  readonly #clock: Clock;
  readonly #buckets = new Map<string, { tokens: number; atMs: number; blockedUntilMs: number }>();

  constructor(options: WriteBudgetOptions, clock: Clock) {
    if (!(options.capacity >= 1)) throw new RangeError(`WriteBudget: capacity must be >= 1, got ${options.capacity}`);
    if (!(options.refillPerMinute > 0)) throw new RangeError(`WriteBudget: refillPerMinute must be > 0, got ${options.refillPerMinute}`);
    this.#options = options;
    this.#clock = clock;
  }

  #bucket(key: string): { tokens: number; atMs: number; blockedUntilMs: number } {
    const now = this.#clock.now();
    let bucket = this.#buckets.get(key);
    if (!bucket) {
      bucket = { tokens: this.#options.capacity, atMs: now, blockedUntilMs: 0 };
      this.#buckets.set(key, bucket);
    }
    const elapsed = Math.max(0, now - bucket.atMs);
    bucket.tokens = Math.min(this.#options.capacity, bucket.tokens + (elapsed * this.#options.refillPerMinute) / 60_000);
    bucket.atMs = now;
    return bucket;
  }

  /** How long until a write to `key` is allowed (0: now). */
  waitMs(key: string): number {
    const bucket = this.#bucket(key);
    const blocked = Math.max(0, bucket.blockedUntilMs - this.#clock.now());
    const refill = bucket.tokens >= 1 ? 0 : Math.ceil(((1 - bucket.tokens) * 60_000) / this.#options.refillPerMinute);
    return Math.max(blocked, refill);
  }

  /** Waits for and takes one write token; returns how long it waited. */
  async acquire(key: string, signal?: AbortSignal): Promise<number> {
    let waited = 0;
    for (;;) {
      if (signal?.aborted) throw signal.reason ?? new Error("aborted");
      const wait = this.waitMs(key);
      if (wait === 0) {
        this.#bucket(key).tokens -= 1;
        return waited;
      }
      waited += wait;
      await this.#clock.sleep(wait, signal);
    }
  }

  /** ARM answered 429 with Retry-After: no writes to `key` until then. */
  block(key: string, ms: number): void {
    const bucket = this.#bucket(key);
    bucket.blockedUntilMs = Math.max(bucket.blockedUntilMs, this.#clock.now() + ms);
  }
}
