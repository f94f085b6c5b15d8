import type { Clock } from "../clock";

export interface WriteBudgetOptions {
  /** Largest burst of PATCHes per VM/VMSS (Azure compute: 12). */
  capacity: number;
  /** Refill per minute (Azure compute: 4 VMSS updates per minute per resource). */
  refillPerMinute: number;
  /**
   * When ARM reports this many subscription writes left or fewer (`x-ms-ratelimit-remaining-subscription-writes`),
   * MIC writes no faster than ARM refills them, so the bucket never runs dry. Default 20 (a tenth of ARM's 200).
   */
  subscriptionLowWatermark?: number;
  /** How often ARM adds one subscription write (its documented refill: 10/s → 100 ms). */
  subscriptionRefillIntervalMs?: number;
}

export const DEFAULT_WRITE_BUDGET_PACING = {
  subscriptionLowWatermark: 20,
  subscriptionRefillIntervalMs: 100,
} as const;

type Headers = Record<string, string | string[] | undefined>;

// `Microsoft.Compute/VMScaleSetUpdateResource;11` — one policy's remaining calls; a header lists several, comma-separated.
const RESOURCE_POLICY = /^\s*[\w.]+\/[\w.-]+;(\d+)\s*$/;

/**
 * Paces MIC's ARM writes so Azure never has to refuse them (AAD#676: 4,000 PATCHes in 1.5 h), from three sources:
 * - a token bucket per VM/VMSS kept locally (Compute's per-resource limit), lowered to what ARM reports left in
 *   `x-ms-ratelimit-remaining-resource` (other writers spend from the same bucket);
 * - ARM's subscription write count from `x-ms-ratelimit-remaining-subscription-writes`: at or below the low
 *   watermark, writes across all VM/VMSSes are spaced at ARM's refill interval;
 * - a 429's Retry-After, which blocks that VM/VMSS (Compute) or every write (ARM's SubscriptionRequestsThrottled).
 */
export class WriteBudget {
  readonly #options: Required<WriteBudgetOptions>;
  readonly #clock: Clock;
  readonly #buckets = new Map<string, { tokens: number; atMs: number; blockedUntilMs: number }>();
  /** ARM's subscription writes left as last estimated (undefined until ARM reports it), and when. */
  #subscriptionRemaining: number | undefined;
  #subscriptionAtMs = 0;
  #subscriptionBlockedUntilMs = 0;

  constructor(options: WriteBudgetOptions, clock: Clock) {
    const o = { ...DEFAULT_WRITE_BUDGET_PACING, ...options };
    if (!(o.capacity >= 1)) throw new RangeError(`WriteBudget: capacity must be >= 1, got ${o.capacity}`);
    if (!(o.refillPerMinute > 0)) throw new RangeError(`WriteBudget: refillPerMinute must be > 0, got ${o.refillPerMinute}`);
    if (!(o.subscriptionLowWatermark >= 0)) throw new RangeError(`WriteBudget: subscriptionLowWatermark must be >= 0, got ${o.subscriptionLowWatermark}`);
    if (!(o.subscriptionRefillIntervalMs > 0)) throw new RangeError(`WriteBudget: subscriptionRefillIntervalMs must be > 0, got ${o.subscriptionRefillIntervalMs}`);
    this.#options = o;
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

  /** ARM's subscription writes left now: the last report, refilled since at ARM's rate, less our writes since. */
  #subscriptionEstimate(): number | undefined {
    if (this.#subscriptionRemaining === undefined) return undefined;
    return this.#subscriptionRemaining + Math.max(0, this.#clock.now() - this.#subscriptionAtMs) / this.#options.subscriptionRefillIntervalMs;
  }

  /** How long until a write to `key` is allowed (0: now). */
  waitMs(key: string): number {
    const now = this.#clock.now();
    const bucket = this.#bucket(key);
    const blocked = Math.max(0, bucket.blockedUntilMs - now, this.#subscriptionBlockedUntilMs - now);
    const refill = bucket.tokens >= 1 ? 0 : Math.ceil(((1 - bucket.tokens) * 60_000) / this.#options.refillPerMinute);
    const estimate = this.#subscriptionEstimate();
    const floor = this.#options.subscriptionLowWatermark + 1;
    const subscription = estimate === undefined || estimate >= floor ? 0 : Math.ceil((floor - estimate) * this.#options.subscriptionRefillIntervalMs);
    return Math.max(blocked, refill, subscription);
  }

  /** Waits for and takes one write token; returns how long it waited. */
  async acquire(key: string, signal?: AbortSignal): Promise<number> {
    let waited = 0;
    for (;;) {
      if (signal?.aborted) throw signal.reason ?? new Error("aborted");
      const wait = this.waitMs(key);
      if (wait === 0) {
        this.#bucket(key).tokens -= 1;
        const estimate = this.#subscriptionEstimate();
        if (estimate !== undefined) {
          this.#subscriptionRemaining = estimate - 1;
          this.#subscriptionAtMs = this.#clock.now();
        }
        return waited;
      }
      waited += wait;
      await this.#clock.sleep(wait, signal);
    }
  }

  /**
   * Reads ARM's `x-ms-ratelimit-remaining-*` headers of an answer (to a write on `key`, or any request): the lower
   * of ARM's count and our own estimate wins, since writes still in flight are not in ARM's count yet.
   */
  observe(key: string | undefined, headers: Headers): void {
    const now = this.#clock.now();
    // Digits only: Number("") is 0 (an empty header would read as "no writes left") and Number("0x10") is 16.
    const raw = first(headers, "x-ms-ratelimit-remaining-subscription-writes")?.trim();
    if (raw !== undefined && /^\d+$/.test(raw)) {
      const writes = Number(raw);
      const estimate = this.#subscriptionEstimate();
      this.#subscriptionRemaining = estimate === undefined ? writes : Math.min(estimate, writes);
      this.#subscriptionAtMs = now;
    }
    const resource = first(headers, "x-ms-ratelimit-remaining-resource");
    if (key !== undefined && resource !== undefined) {
      let lowest = Number.POSITIVE_INFINITY;
      for (const part of resource.split(",")) {
        const match = RESOURCE_POLICY.exec(part);
        if (match) lowest = Math.min(lowest, Number(match[1]));
      }
      if (Number.isFinite(lowest)) {
        const bucket = this.#bucket(key);
        bucket.tokens = Math.min(bucket.tokens, lowest);
      }
    }
  }

  /** ARM answered 429 with Retry-After: no writes to `key` until then (`key` undefined: none at all). */
  block(key: string | undefined, ms: number): void {
    const until = this.#clock.now() + ms;
    if (key === undefined) {
      this.#subscriptionBlockedUntilMs = Math.max(this.#subscriptionBlockedUntilMs, until);
      return;
    }
    const bucket = this.#bucket(key);
    bucket.blockedUntilMs = Math.max(bucket.blockedUntilMs, until);
  }

  /** ARM's subscription writes left as MIC estimates them (undefined before ARM reported any), for metrics and tests. */
  subscriptionWritesRemaining(): number | undefined {
    const estimate = this.#subscriptionEstimate();
    return estimate === undefined ? undefined : Math.floor(estimate);
  }
}

function first(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}
