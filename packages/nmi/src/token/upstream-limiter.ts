import { NMI_ERROR_CODE, NmiError } from "../errors";
import { TokenBucket } from "../token-bucket";

export interface UpstreamLimiterOptions {
  requestsPerSecond: number;
  maxConcurrent: number;
  /** How long a call may queue before it fails with 503 podidentity_upstream_unavailable. */
  queueTimeoutMs: number;
  retryAfterSeconds: number;
  now?: () => number;
}

interface Waiter {
  resolve: () => void;
  reject: (e: unknown) => void;
  timer: NodeJS.Timeout;
}

/**
 * Keeps this node's calls to IMDS under its Managed Identity limits (20 requests/s and 5 concurrent per VM, all
 * pods of the node sharing them): calls beyond the budget wait in a FIFO queue for a short while instead of
 * being answered 429 by IMDS. Rate by token bucket (capacity = one second's worth).
 */
export class UpstreamLimiter {
  readonly #options: UpstreamLimiterOptions;
  readonly #now: () => number;
  readonly #queue: Waiter[] = [];
  readonly #bucket: TokenBucket;
  #inFlight = 0;
  #refillTimer: NodeJS.Timeout | undefined;

  constructor(options: UpstreamLimiterOptions) {
    if (!(options.requestsPerSecond > 0)) throw new RangeError(`UpstreamLimiter: requestsPerSecond must be > 0, got ${options.requestsPerSecond}`);
    if (!(options.maxConcurrent >= 1)) throw new RangeError(`UpstreamLimiter: maxConcurrent must be >= 1, got ${options.maxConcurrent}`);
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#bucket = new TokenBucket(options.requestsPerSecond, options.requestsPerSecond, this.#now());
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /** Runs `fn` once the budget allows. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    await this.#acquire();
    try {
      return await fn();
    } finally {
      this.#inFlight--;
      this.#drain();
    }
  }

  #tryTake(): boolean {
    if (this.#inFlight >= this.#options.maxConcurrent || !this.#bucket.available(this.#now())) return false;
    this.#bucket.take();
    this.#inFlight++;
    return true;
  }

  #acquire(): Promise<void> {
    if (this.#queue.length === 0 && this.#tryTake()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = this.#queue.indexOf(waiter);
          if (i >= 0) this.#queue.splice(i, 1);
          reject(
            new NmiError(
              503,
              NMI_ERROR_CODE.UpstreamUnavailable,
              `the node's IMDS budget (${this.#options.requestsPerSecond} requests/s, ${this.#options.maxConcurrent} concurrent) stayed exhausted for ${this.#options.queueTimeoutMs} ms; retry later`,
              { retryAfterSeconds: this.#options.retryAfterSeconds },
            ),
          );
        }, this.#options.queueTimeoutMs),
      };
      this.#queue.push(waiter);
      this.#scheduleRefill();
    });
  }

  #drain(): void {
    while (this.#queue.length > 0 && this.#tryTake()) {
      const waiter = this.#queue.shift()!;
      clearTimeout(waiter.timer);
      waiter.resolve();
    }
    if (this.#queue.length > 0) this.#scheduleRefill();
  }

  /** Wakes the queue when the next rate token is due (concurrency slots wake it on release). */
  #scheduleRefill(): void {
    if (this.#refillTimer !== undefined) return;
    const ms = Math.max(1, Math.ceil(this.#bucket.msUntilToken()));
    this.#refillTimer = setTimeout(() => {
      this.#refillTimer = undefined;
      this.#drain();
    }, ms);
  }
}
