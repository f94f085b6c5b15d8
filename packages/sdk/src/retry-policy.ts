import { DEFAULT_POD_IDENTITY_CREDENTIAL_OPTIONS } from "./pod-identity-credential-options";
import type { PodIdentityRetryOptions } from "./pod-identity-credential-options";
import { PodIdentityUnavailableError } from "./errors";

export interface RetryEvent {
  /** 1 for the first retry. */
  retry: number;
  delayMs: number;
  elapsedMs: number;
  failure: PodIdentityUnavailableError;
}

export interface RetryRunOptions {
  now: () => number;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  signal: AbortSignal;
  onRetry?: (event: RetryEvent) => void;
}

/**
 * Reads Retry-After as delta seconds or an HTTP date (RFC 9110 §10.2.3), plus the millisecond variants Azure
 * services send. Returns undefined when absent or unreadable, so the caller falls back to its own backoff.
 */
export function parseRetryAfter(headers: Record<string, string | string[] | undefined>, now: number): number | undefined {
  const first = (name: string): string | undefined => {
    const value = headers[name];
    return (Array.isArray(value) ? value[0] : value)?.trim() || undefined;
  };
  for (const name of ["retry-after-ms", "x-ms-retry-after-ms"]) {
    const ms = first(name);
    if (ms !== undefined && /^\d+(\.\d+)?$/.test(ms)) return Number(ms);
  }
  const value = first("retry-after");
  if (value === undefined) return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/**
 * Decides whether and how long to wait before the next attempt. Budget-first: identity assignment can take a
 * minute, so the elapsed-time budget, not a small retry count, is what normally ends the retries.
 */
export class RetryPolicy {
  constructor(
    private readonly options: Required<PodIdentityRetryOptions>,
    private readonly random: () => number,
  ) {}

  /** Jittered exponential backoff: uniform in [d/2, d], d = min(maxDelay, initial·2^n). */
  backoffMs(retryIndex: number): number {
    const nominal = Math.min(this.options.maxDelayMs, this.options.initialDelayMs * 2 ** retryIndex);
    return nominal / 2 + this.random() * (nominal / 2);
  }

  /** The wait before retry number `retriesSoFar + 1`, or undefined when the budget is spent. */
  nextDelayMs(failure: PodIdentityUnavailableError, retriesSoFar: number, elapsedMs: number): number | undefined {
    if (failure.code !== "TRANSIENT_FAILURE") return undefined;
    // IMDS promises a 410 ends "within 70 seconds": keep going that long even past maxRetries.
    const goneGrace = failure.statusCode === 410 && elapsedMs < DEFAULT_POD_IDENTITY_CREDENTIAL_OPTIONS.goneMinRetryMs;
    if (retriesSoFar >= this.options.maxRetries && !goneGrace) return undefined;
    // A failure may carry a tighter budget (a refused connection before the endpoint ever answered).
    const remaining = Math.min(this.options.maxElapsedMs, failure.retryWithin?.ms ?? Infinity) - elapsedMs;
    if (remaining <= 0) return undefined;
    if (failure.retryAfterMs !== undefined) {
      // Waiting less than the server asked would only earn another refusal; give up instead.
      return failure.retryAfterMs <= remaining ? failure.retryAfterMs : undefined;
    }
    return Math.min(this.backoffMs(retriesSoFar), remaining);
  }

  /**
   * Runs `attempt` until it succeeds, fails for good, or the budget is spent (RETRY_EXHAUSTED, last failure as
   * cause). The signal interrupts the backoff sleep as well as the attempt.
   */
  async run<T>(attempt: (signal: AbortSignal) => Promise<T>, options: RetryRunOptions): Promise<T> {
    const startedAt = options.now();
    for (let retries = 0; ; retries++) {
      try {
        return await attempt(options.signal);
      } catch (error) {
        if (options.signal.aborted || !(error instanceof PodIdentityUnavailableError)) throw error;
        const elapsedMs = options.now() - startedAt;
        const delayMs = this.nextDelayMs(error, retries, elapsedMs);
        if (delayMs === undefined) {
          if (error.code !== "TRANSIENT_FAILURE") throw error;
          const within = error.retryWithin;
          const limits =
            within !== undefined && within.ms < this.options.maxElapsedMs
              ? `option ${within.option}=${within.ms}`
              : `options retry.maxRetries=${this.options.maxRetries}, retry.maxElapsedMs=${this.options.maxElapsedMs}`;
          throw new PodIdentityUnavailableError(
            "RETRY_EXHAUSTED",
            `PodIdentityCredential: gave up after ${retries + 1} attempt(s) in ${Math.round(elapsedMs)} ms (${limits}). ` +
              `Last failure: ${error.message}`,
            { cause: error, statusCode: error.statusCode, errorBody: error.errorBody },
          );
        }
        options.onRetry?.({ retry: retries + 1, delayMs, elapsedMs, failure: error });
        await options.sleep(delayMs, options.signal);
      }
    }
  }
}
