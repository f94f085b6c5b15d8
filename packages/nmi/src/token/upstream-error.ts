import { NMI_ERROR_CODE, NmiError, UpstreamRefusalError } from "../errors";

/** Statuses that mean "IMDS/Entra cannot answer now" rather than "no": retryable, so 503 + Retry-After. */
export function isUnavailableStatus(status: number): boolean {
  return status >= 500 || status === 410 || status === 429;
}

/**
 * The one place an upstream answer or failure becomes NMI's error: unreachable, timed out, 5xx, 410 (IMDS
 * updating) and 429 (throttled) → 503 podidentity_upstream_unavailable; any other refusal is passed through as
 * the upstream gave it (UpstreamRefusalError).
 */
export function upstreamFailure(what: string, status: number | undefined, body: unknown, retryAfterSeconds: number, cause?: unknown): Error {
  if (status === undefined) {
    // Network error or timeout: the message of the cause names the host, never a token.
    const reason = cause instanceof Error ? cause.message : String(cause);
    return new NmiError(503, NMI_ERROR_CODE.UpstreamUnavailable, `${what} could not be reached: ${reason}`, { retryAfterSeconds, cause });
  }
  if (isUnavailableStatus(status)) {
    return new NmiError(503, NMI_ERROR_CODE.UpstreamUnavailable, `${what} answered ${status}; retry later`, { retryAfterSeconds });
  }
  return new UpstreamRefusalError(status, body, `${what} refused the token request with ${status}`);
}
