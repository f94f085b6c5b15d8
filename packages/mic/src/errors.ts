/**
 * MIC's error classes. Each has a stable `code`; raw HTTP failures become one of these in exactly one place
 * (arm/compute-client.ts for ARM; the API server's failures are @podidentity/kube's KubeApiError).
 */

/** A reconcile failure that retrying cannot fix (bad input): logged and reported, never retried. */
export class TerminalError extends Error {
  readonly code = "TERMINAL";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TerminalError";
  }
}

/** This replica does not hold the lease (or just lost it): the write was not attempted. */
export class NotLeaderError extends Error {
  readonly code = "NOT_LEADER";
  constructor(what: string) {
    super(`not the leader: ${what} skipped (another MIC replica holds the lease)`);
    this.name = "NotLeaderError";
  }
}

/** ARM refused or failed a request or long-running operation. */
export class ArmRequestError extends Error {
  readonly code = "ARM_REQUEST_ERROR";
  constructor(
    message: string,
    readonly fields: {
      statusCode: number;
      armCode: string;
      /** ARM's own message, as it came (the error's message adds the operation and status). */
      armMessage?: string;
      operation: string;
      /** From Retry-After on 429/503, when given. */
      retryAfterMs?: number;
      /** Identity resource IDs (canonical) that FailedIdentityOperation / LinkedAuthorizationFailed named. */
      failedIdentityIds: readonly string[];
    },
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "ArmRequestError";
  }

  get statusCode(): number {
    return this.fields.statusCode;
  }
}

/** The azure.json / environment configuration cannot be used. */
export class CloudConfigError extends Error {
  readonly code = "CLOUD_CONFIG_INVALID";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "CloudConfigError";
  }
}

export function isAbortError(error: unknown): boolean {
  return error instanceof Error && (error.name === "AbortError" || (error as { code?: string }).code === "UND_ERR_ABORTED");
}

/** An error as log fields: its class, message and code (never its cause's body, which may hold a token). */
export function describe(error: unknown): Record<string, unknown> {
  if (error instanceof Error) return { type: error.name, message: error.message, code: (error as { code?: unknown }).code };
  return { message: String(error) };
}
