import type { Clock } from "../clock";

export interface TokenBucketOptions {
  /** Largest burst. */
  capacity: number;
  /** Tokens added per minute, continuously. */
  refillPerMinute: number;
}

export type TakeResult = { ok: true; remaining: number } | { ok: false; retryAfterMs: number };

/**
 * A token bucket on the injectable clock (Azure's 2024 throttling model: a burst capacity that
 * refills continuously). Refill is computed from elapsed clock time, so nothing runs in the
 * background and tests move time with a ManualClock.
 */
export class TokenBucket {
  readonly capacity: number;
  readonly refillPerMinute: number;
  readonly #clock: Clock;
  #tokens: number;
  #updatedAtMs: number;

  constructor(options: TokenBucketOptions, clock: Clock) {
    if (!(options.capacity >= 1)) throw new RangeError(`TokenBucket: capacity must be >= 1, got ${options.capacity}`);
    if (!(options.refillPerMinute > 0)) {
      throw new RangeError(`TokenBucket: refillPerMinute must be > 0, got ${options.refillPerMinute}`);
    }
    this.capacity = options.capacity;
    this.refillPerMinute = options.refillPerMinute;
    this.#clock = clock;
    this.#tokens = options.capacity;
    this.#updatedAtMs = clock.now();
  }

  #refill(): void {
    const now = this.#clock.now();
    const elapsed = Math.max(0, now - this.#updatedAtMs);
    this.#tokens = Math.min(this.capacity, this.#tokens + (elapsed * this.refillPerMinute) / 60_000);
    this.#updatedAtMs = now;
  }

  /** Tokens available now (fractional while refilling). */
  available(): number {
    this.#refill();
    return this.#tokens;
  }

  /** Checks without taking: how long until one token is available (0 when one is). */
  waitMs(): number {
    this.#refill();
    if (this.#tokens >= 1) return 0;
    return Math.ceil(((1 - this.#tokens) * 60_000) / this.refillPerMinute);
  }

  take(): TakeResult {
    const waitMs = this.waitMs();
    if (waitMs > 0) return { ok: false, retryAfterMs: waitMs };
    this.#tokens -= 1;
    return { ok: true, remaining: Math.floor(this.#tokens) };
  }
}

/** Takes one token from every bucket, or none: a request refused by one limit must not drain the others. */
export function takeAll(buckets: readonly TokenBucket[]): TakeResult & { limitedBy?: number } {
  let worst = 0;
  let limitedBy = -1;
  buckets.forEach((bucket, index) => {
    const wait = bucket.waitMs();
    if (wait > worst) {
      worst = wait;
      limitedBy = index;
    }
  });
  if (worst > 0) return { ok: false, retryAfterMs: worst, limitedBy };
  let remaining = Number.POSITIVE_INFINITY;
  for (const bucket of buckets) {
    const result = bucket.take();
    if (result.ok) remaining = Math.min(remaining, result.remaining);
  }
  return { ok: true, remaining };
}
