import { canonicalResourceId } from "@podidentity/api";
import { ArmRequestError } from "../errors";

/** What one failed identity update means for the assignments it carried. */
export interface ArmFailure {
  /**
   * True when sending the same request again cannot succeed until someone changes something: the identity does
   * not exist, its resource ID is invalid, or MIC may not write the VM/VMSS or assign the identity. MIC still
   * retries (with backoff, and at once when the AzureIdentity changes): the fix happens outside MIC.
   */
  readonly permanent: boolean;
  /** ARM's error code, or the transport's (ECONNRESET…) for a network failure. */
  readonly code: string;
  /** ARM's message as it came (never carries a token). */
  readonly message: string;
  /** Canonical identity resource IDs the error names (empty when it names none). */
  readonly identityIds: readonly string[];
}

/** ARM codes that retrying alone does not fix. */
const PERMANENT_CODES: ReadonlySet<string> = new Set([
  // The caller may not write the VM/VMSS, or may not assign the identity (userAssignedIdentities/assign/action).
  "AuthorizationFailed",
  "LinkedAuthorizationFailed",
  // A malformed or unusable identity resource ID.
  "LinkedInvalidPropertyId",
  "InvalidResourceId",
  "InvalidResourceReference",
]);

/**
 * FailedIdentityOperation wraps the identity service's own answer ("… Status: 'NotFound'. Response: …"); these
 * inner statuses are the caller's to fix, others (InternalServerError, 499, TooManyRequests) pass.
 */
const PERMANENT_INNER_STATUS = /Status:\s*'(NotFound|BadRequest|Forbidden|Unauthorized|400|401|403|404)'/i;

// `Property id '<id>' at path 'identity.userAssignedIdentities' is invalid`: the one ID ARM could not parse.
const INVALID_PROPERTY_ID = /Property id '([^']+)'/;

/**
 * Sorts a failed VM/VMSS identity update into permanent (reported on the AzureAssignedIdentity and the pod)
 * and transient (429, 409, 5xx, a failed long-running operation, the network: retried quietly with backoff).
 * Decided on ARM's status and code, and for FailedIdentityOperation on the inner status it reports.
 */
export function classifyArmFailure(error: unknown): ArmFailure {
  if (!(error instanceof ArmRequestError)) {
    // Network errors, timeouts, aborts: nothing ARM said.
    const code = (error as { code?: unknown } | undefined)?.code;
    return { permanent: false, code: typeof code === "string" ? code : error instanceof Error ? error.name : "Error", message: error instanceof Error ? error.message : String(error), identityIds: [] };
  }
  const { statusCode, armCode } = error.fields;
  const message = error.fields.armMessage ?? error.message;
  const identityIds = [...error.fields.failedIdentityIds];
  const invalid = armCode === "LinkedInvalidPropertyId" ? INVALID_PROPERTY_ID.exec(message)?.[1] : undefined;
  if (invalid !== undefined) identityIds.push(canonicalResourceId(invalid));
  const transientStatus = statusCode === 408 || statusCode === 409 || statusCode === 429 || statusCode >= 500;
  let permanent: boolean;
  if (transientStatus) permanent = false;
  else if (armCode === "FailedIdentityOperation") permanent = PERMANENT_INNER_STATUS.test(message);
  else permanent = PERMANENT_CODES.has(armCode);
  return { permanent, code: armCode, message, identityIds };
}

/**
 * True when ARM refused or ended a write because another operation on the same VM/VMSS was running: 409 Conflict
 * ("The request failed due to conflict with a concurrent request") or a long-running operation Canceled with
 * OperationPreempted (a newer operation took over). Waiting for the running operation and planning again fixes it.
 */
export function isOperationConflict(error: unknown): boolean {
  if (!(error instanceof ArmRequestError)) return false;
  const { statusCode, armCode } = error.fields;
  // Not 409 OperationNotAllowed: Compute uses it for a VM/VMSS marked for deletion, which waiting does not fix.
  return (statusCode === 409 && (armCode === "Conflict" || armCode === "AnotherOperationInProgress")) || armCode === "OperationPreempted";
}
