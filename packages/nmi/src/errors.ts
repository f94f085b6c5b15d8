import { DaemonError } from "@podidentity/daemon";

/**
 * NMI's own refusals, as docs/contract.md's Errors table: each has an HTTP status, an IMDS-shaped `error` code and, for 503s,
 * a Retry-After. Messages name what to check and never contain a token or secret.
 */
export const NMI_ERROR_CODE = {
  InvalidRequest: "invalid_request",
  HostNetwork: "podidentity_host_network",
  NoBinding: "podidentity_no_binding",
  NotBound: "podidentity_not_bound",
  PodUnknown: "podidentity_pod_unknown",
  Pending: "podidentity_pending",
  /**
   * 403 at once: the assignment cannot succeed as things are — MIC recorded ARM's refusal on the
   * AzureAssignedIdentity (`status.error`), or in managed mode the node's IMDS kept answering "Identity not found"
   * past the propagation grace. Not a wait: the AzureIdentity, the identity in Azure or MIC's permissions must change.
   */
  AssignmentFailed: "podidentity_assignment_failed",
  UpstreamUnavailable: "podidentity_upstream_unavailable",
  /**
   * A route or method NMI refuses, e.g. `/metadata/instance` with `--block-instance-metadata`, or `/host/token`
   * from anywhere but 127.0.0.1 (v1.8 answered those in plain text, 403 and 500).
   */
  Forbidden: "podidentity_forbidden",
  /** The AzureIdentity or its Secret is unusable (v1.8 answered 503). */
  IdentityInvalid: "podidentity_identity_invalid",
  Internal: "podidentity_internal_error",
  /** 404 for a path NMI does not pass to IMDS (server/proxy-allowlist.ts); IMDS answers unknown paths 404 too. */
  NotFound: "not_found",
  /** 429 + Retry-After: a pod (or all pods together) over the proxied routes' rate (server/pod-rate-limiter.ts). */
  RateLimited: "podidentity_rate_limited",
  /** 503 + Retry-After: every connection NMI accepts has a request in progress (server/connection-guard.ts). */
  Overloaded: "podidentity_overloaded",
} as const;
export type NmiErrorCode = (typeof NMI_ERROR_CODE)[keyof typeof NMI_ERROR_CODE];

export interface NmiErrorOptions {
  retryAfterSeconds?: number;
  cause?: unknown;
  headers?: Record<string, string>;
}

/**
 * A refusal NMI answers itself. `wireCode` is the answer's IMDS `error` (docs/contract.md's Errors table: the
 * contract, never changed); `code` is the namespaced DaemonError code for logs (`podidentity_no_binding` →
 * `nmi.no_binding`).
 */
export class NmiError extends DaemonError {
  readonly statusCode: number;
  readonly wireCode: string;
  readonly retryAfterSeconds: number | undefined;
  readonly headers: Record<string, string>;

  constructor(statusCode: number, wireCode: string, message: string, options: NmiErrorOptions = {}) {
    super(nmiLogCode(wireCode), message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "NmiError";
    this.statusCode = statusCode;
    this.wireCode = wireCode;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.headers = options.headers ?? {};
  }

  /** The IMDS-shaped body. */
  toJSON(): { error: string; error_description: string } {
    return { error: this.wireCode, error_description: this.message };
  }
}

/** The namespaced log code of a wire code: `nmi.` and the code without its `podidentity_` prefix. */
export function nmiLogCode(wireCode: string): string {
  const what = wireCode.replace(/^podidentity_/, "").toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "");
  return `nmi.${what === "" ? "error" : what}`;
}

/**
 * A refusal by upstream IMDS or Entra that is not ours to reinterpret (docs/contract.md: "passed through unchanged"):
 * the status and the parsed body are kept as they came.
 */
export class UpstreamRefusalError extends Error {
  readonly statusCode: number;
  readonly body: unknown;
  readonly code = "UPSTREAM_REFUSAL";

  constructor(statusCode: number, body: unknown, message: string) {
    super(message);
    this.name = "UpstreamRefusalError";
    this.statusCode = statusCode;
    this.body = body;
  }

  /** IMDS answers 400 `Identity not found` while an assignment is still propagating to the node. */
  get isIdentityNotFound(): boolean {
    const b = this.body as { error_description?: unknown } | undefined;
    return this.statusCode === 400 && typeof b?.error_description === "string" && /identity not found/i.test(b.error_description);
  }
}

/**
 * Text from elsewhere (ARM's message) put into an answer to a pod: GUIDs that are not part of a resource path
 * (client and object IDs, as in "The client '…' with object id '…'") redacted, and at most `maxLength` characters.
 */
export function redactForPod(text: string, maxLength: number): string {
  const redacted = text.replace(/(?<![/\w-])[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?![\w-])/gi, (id) => redactId(id));
  return redacted.length > maxLength ? `${redacted.slice(0, maxLength - 1)}…` : redacted;
}

/** Client IDs in logs and messages: first and last 4 characters only (issue 5). */
export function redactId(id: string | undefined): string {
  if (id === undefined || id === "") return "";
  if (id.length <= 8) return "****";
  return `${id.slice(0, 4)}…${id.slice(-4)}`;
}
