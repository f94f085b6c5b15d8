/**
 * A token bucket on a caller's clock: `perSecond` tokens accrue continuously up to `capacity`. NMI paces both its
 * upstream IMDS calls (token/upstream-limiter.ts) and pods' proxied requests (server/pod-rate-limiter.ts) with it.
 */
export class TokenBucket {
  readonly perSecond: number;
  readonly capacity: number;
  #tokens: number;
  #atMs: number;

  /** Starts full. */
  constructor(perSecond: number, capacity: number, nowMs: number) {
    this.perSecond = perSecond;
    this.capacity = capacity;
    this.#tokens = capacity;
    this.#atMs = nowMs;
  }

  /** Whether a whole token is there at `nowMs` (accruing up to then). */
  available(nowMs: number): boolean {
    if (nowMs > this.#atMs) this.#tokens = Math.min(this.capacity, this.#tokens + ((nowMs - this.#atMs) / 1000) * this.perSecond);
    this.#atMs = Math.max(this.#atMs, nowMs);
    return this.#tokens >= 1;
  }

  /** Takes a token; call only after `available` said yes. */
  take(): void {
    this.#tokens -= 1;
  }

  /** Milliseconds until a whole token is there (0 when one is), as of the last `available` call. */
  msUntilToken(): number {
    return Math.max(0, ((1 - this.#tokens) / this.perSecond) * 1000);
  }
}
