import { AuthenticationError, CredentialUnavailableError } from "@azure/identity";

/**
 * Stable codes for {@link PodIdentityUnavailableError}: the credential cannot produce a token here, so a
 * `ChainedTokenCredential` moves on to its next credential.
 */
export type PodIdentityUnavailableCode =
  /** NMI refused with one of its own 403 codes (`podidentity_no_binding`, `…_not_bound`, `…_host_network`). */
  | "IDENTITY_UNAVAILABLE"
  /**
   * Nothing answers at the endpoint's address: no route or unknown host; or, before the endpoint has ever
   * answered, no connection within `firstContact.connectTimeoutMs` or (outside a pod) a refused connection.
   */
  | "ENDPOINT_UNREACHABLE"
  /** A retryable failure (404/408/410/429/5xx, refused/reset connection, timeout); seen as the `cause` of RETRY_EXHAUSTED. */
  | "TRANSIENT_FAILURE"
  /** Every retry allowed by `retry.maxRetries` / `retry.maxElapsedMs` failed; `cause` is the last failure. */
  | "RETRY_EXHAUSTED"
  /** The caller's `requestOptions.timeout` elapsed before a token arrived. */
  | "TIMEOUT"
  /** @azure/identity's WorkloadIdentityCredential could not be used (unreadable token file, network…). */
  | "WORKLOAD_IDENTITY_UNAVAILABLE";

/** Stable codes for {@link PodIdentityAuthenticationError}: the endpoint answered, definitively, with no usable token. */
export type PodIdentityAuthenticationCode =
  /** A 4xx that retrying cannot fix (bad resource, missing Metadata header, Entra refusal…). */
  | "REQUEST_REJECTED"
  /** A 2xx whose body is not a token: no access_token, unparsable expiry, empty array, HTML, cut-off body. */
  | "INVALID_RESPONSE";

export type PodIdentityErrorCode = PodIdentityUnavailableCode | PodIdentityAuthenticationCode;

/** The `{error, error_description}` body of an IMDS/NMI/Entra refusal, as parsed from the response. */
export interface OAuthErrorBody {
  error: string;
  error_description: string;
  [key: string]: unknown;
}

export interface PodIdentityUnavailableErrorOptions {
  cause?: unknown;
  statusCode?: number;
  errorBody?: OAuthErrorBody;
  /** For TRANSIENT_FAILURE: how long the server asked us to wait (Retry-After), if it did. */
  retryAfterMs?: number;
  /** For TRANSIENT_FAILURE: a tighter budget for this failure (retried only while the acquisition is younger). */
  retryWithin?: RetryWithin;
}

/** A failure-specific retry budget and the option that sets it (named in the RETRY_EXHAUSTED message). */
export interface RetryWithin {
  ms: number;
  option: string;
}

/**
 * The credential is not usable in this environment right now. Extends @azure/identity's
 * CredentialUnavailableError and keeps its `name`, because ChainedTokenCredential decides by `name`
 * (and callers by `instanceof`) whether to try the next credential.
 */
export class PodIdentityUnavailableError extends CredentialUnavailableError {
  readonly code: PodIdentityUnavailableCode;
  readonly statusCode: number | undefined;
  readonly errorBody: OAuthErrorBody | undefined;
  readonly retryAfterMs: number | undefined;
  readonly retryWithin: RetryWithin | undefined;

  constructor(code: PodIdentityUnavailableCode, message: string, options: PodIdentityUnavailableErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.statusCode = options.statusCode;
    this.errorBody = options.errorBody;
    this.retryAfterMs = options.retryAfterMs;
    this.retryWithin = options.retryWithin;
  }
}

/**
 * The endpoint gave a definitive answer that is not a token. Extends @azure/identity's AuthenticationError
 * (`statusCode`, `errorResponse`) so a ChainedTokenCredential stops here instead of masking the problem.
 */
export class PodIdentityAuthenticationError extends AuthenticationError {
  readonly code: PodIdentityAuthenticationCode;
  readonly errorBody: OAuthErrorBody;

  constructor(
    code: PodIdentityAuthenticationCode,
    statusCode: number,
    errorBody: OAuthErrorBody,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(statusCode, errorBody, options.cause === undefined ? undefined : { cause: options.cause });
    // AuthenticationError builds a generic message from the body; ours says what to do.
    this.message = message;
    this.code = code;
    this.errorBody = errorBody;
  }
}

export type PodIdentityError = PodIdentityUnavailableError | PodIdentityAuthenticationError;

/** True for the errors this package throws (either class), so callers can read `code` safely. */
export function isPodIdentityError(error: unknown): error is PodIdentityError {
  return error instanceof PodIdentityUnavailableError || error instanceof PodIdentityAuthenticationError;
}

/** The error `getToken` rejects with when the caller's abortSignal fires (the name core-rest-pipeline uses). */
export class PodIdentityAbortError extends Error {
  constructor(message = "PodIdentityCredential: the operation was aborted by the caller's abortSignal.", options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AbortError";
  }
}
