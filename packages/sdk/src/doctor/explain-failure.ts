import { isPodIdentityError } from "../errors";
import { hintForErrorCode } from "../nmi-error-codes";

/** One failure, said in one line with its likely fix. */
export interface FailureExplanation {
  /** This package's code (e.g. RETRY_EXHAUSTED) or the error's name. */
  code: string;
  statusCode?: number;
  /** The endpoint's `error` code, or the network error code. */
  reason?: string;
  message: string;
  fix: string;
  /** A command that shows more, when the endpoint named the object to look at (podidentity_assignment_failed). */
  command?: string;
}

const NETWORK_HINTS: Record<string, string> = {
  ECONNREFUSED:
    "nothing listens at the endpoint: check NMI runs on this node (kubectl get pods -n kube-system -o wide) and its iptables DNAT rule exists",
  ETIMEDOUT:
    "the endpoint does not answer TCP: not on Azure, or NMI's DNAT is missing; set --endpoint / AZURE_POD_IDENTITY_AUTHORITY_HOST if NMI listens elsewhere",
  ECONNRESET: "the connection was reset: NMI may be restarting or overloaded; check its logs and restarts",
  EHOSTUNREACH: "no route to the endpoint: this is not an Azure VM/node (or its network blocks 169.254.169.254)",
  ENETUNREACH: "no route to the endpoint: this is not an Azure VM/node (or its network blocks 169.254.169.254)",
  ENOTFOUND: "the endpoint's host name does not resolve: check --endpoint / AZURE_POD_IDENTITY_AUTHORITY_HOST",
};

const CODE_HINTS: Record<string, string> = {
  INVALID_RESPONSE:
    "something other than IMDS/NMI answers at the endpoint (a proxy, a service-mesh sidecar?): exclude 169.254.169.254 from interception",
  TIMEOUT: "the endpoint took longer than --timeout: NMI may be holding the request while the identity is assigned; retry with a longer --timeout",
  WORKLOAD_IDENTITY_UNAVAILABLE:
    "check AZURE_FEDERATED_TOKEN_FILE is mounted and readable and AZURE_TENANT_ID / AZURE_CLIENT_ID are right",
  RETRY_EXHAUSTED: "the endpoint kept failing; check NMI's and MIC's logs",
  REQUEST_REJECTED: "the endpoint refused the request; check the resource and the identity IDs",
  ENDPOINT_UNREACHABLE: "the endpoint cannot be reached: is this running in an Azure pod?",
  IDENTITY_UNAVAILABLE: "NMI has no identity for this pod: check its AzureIdentityBinding",
};

/** The transport's code (ECONNREFUSED, UND_ERR_CONNECT_TIMEOUT…) below this package's own errors. */
function networkCode(error: unknown): string | undefined {
  for (let e = error; e !== null && typeof e === "object"; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (!isPodIdentityError(e) && typeof code === "string") return code;
  }
  return undefined;
}

/**
 * Turns whatever getToken threw into a code and a one-line fix. The endpoint's `error` code wins (it is the
 * most specific), then the network error code, then this package's code.
 */
export function explainFailure(error: unknown): FailureExplanation {
  const message = error instanceof Error ? error.message.split("\n")[0]! : String(error);
  // getToken throws these only for a malformed scope: a programming error, here the --resource value.
  if (error instanceof TypeError || error instanceof RangeError) {
    return { code: error.name, message, fix: "pass exactly one non-empty resource, e.g. --resource https://vault.azure.net" };
  }
  if (!isPodIdentityError(error)) {
    return { code: error instanceof Error ? error.name : "Error", message, fix: "unexpected failure: run with AZURE_LOG_LEVEL=verbose for details" };
  }
  // For RETRY_EXHAUSTED and TIMEOUT the interesting detail is in the last failure.
  const last = (error.code === "RETRY_EXHAUSTED" || error.code === "TIMEOUT") && isPodIdentityError(error.cause) ? error.cause : error;
  const statusCode = error.statusCode ?? last.statusCode;
  const reason = last.errorBody?.error ?? networkCode(last.cause);
  const fix =
    hintForErrorCode(last.errorBody?.error) ??
    (reason !== undefined ? NETWORK_HINTS[reason] : undefined) ??
    CODE_HINTS[error.code] ??
    "see the message above";
  const command = reason === "podidentity_assignment_failed" ? inspectCommand(last.errorBody?.error_description ?? "") : undefined;
  return {
    code: error.code,
    ...(statusCode === undefined ? {} : { statusCode }),
    ...(reason === undefined ? {} : { reason }),
    message,
    fix,
    ...(command === undefined ? {} : { command }),
  };
}

// Kubernetes names: lower-case alphanumerics, '-' and '.'.
const NAME = "[a-z0-9]([-a-z0-9.]*[a-z0-9])?";
const DESCRIBE_ASSIGNED = new RegExp(`kubectl describe azureassignedidentity ${NAME} -n ${NAME}`);
const MANAGED_IDENTITY = new RegExp(`AzureIdentity (${NAME})/(${NAME})`);

/**
 * What to run for podidentity_assignment_failed: NMI names the AzureAssignedIdentity whose status carries ARM's
 * error; in managed mode (no such object) the AzureIdentity whose IDs IMDS does not know. Display only: the
 * decision was made on the code.
 */
function inspectCommand(description: string): string | undefined {
  const assigned = DESCRIBE_ASSIGNED.exec(description);
  if (assigned !== null) return assigned[0];
  const identity = MANAGED_IDENTITY.exec(description);
  return identity === null ? undefined : `kubectl describe azureidentity ${identity[3]} -n ${identity[1]}`;
}
