import { DaemonError } from "@podidentity/daemon";

/**
 * MIC's error classes, on @podidentity/daemon's DaemonError: each has a stable namespaced `code` (`mic.*`) for logs
 * and metrics. Raw HTTP failures become one of these in exactly one place (arm/compute-client.ts for ARM; the API
 * server's failures are @podidentity/kube's KubeApiError).
 */

/**
 * A reconcile failure that retrying cannot fix (the API server refused the object itself, e.g. 422 Invalid):
 * logged, counted as `terminal` in `podidentity_mic_reconcile_total`, and not retried until the key changes.
 */
export class TerminalError extends DaemonError {
  constructor(message: string, options: { code?: string; cause?: unknown } = {}) {
    super(options.code ?? "mic.terminal", message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "TerminalError";
  }
}

/** This replica does not hold the lease (or just lost it): the write was not attempted. */
export class NotLeaderError extends DaemonError {
  constructor(what: string) {
    super("mic.not_leader", `not the leader: ${what} skipped (another MIC replica holds the lease)`);
    this.name = "NotLeaderError";
  }
}

/** ARM refused or failed a request or long-running operation. */
export class ArmRequestError extends DaemonError {
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
    super("mic.arm_refused", message, options);
    this.name = "ArmRequestError";
  }

  get statusCode(): number {
    return this.fields.statusCode;
  }
}

/** The azure.json / environment configuration cannot be used. */
export class CloudConfigError extends DaemonError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("mic.cloud_config_invalid", message, options);
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
