/**
 * Kubernetes `Status` errors as the real API server writes them: the same `reason` strings, HTTP codes, message
 * shapes and `details`, so client libraries (`@kubernetes/client-node`, kubectl) classify them as they would
 * against a real cluster.
 */

/** A resource as the API server names it in messages: `pods`, `leases.coordination.k8s.io`. */
export interface GroupResource {
  group: string;
  resource: string;
}

export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

/** The `Status` object of the Kubernetes API (meta/v1). */
export interface KubeStatus {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Failure" | "Success";
  message: string;
  reason: string;
  details?: StatusDetails;
  code: number;
}

/** A request failed in a way that the API server reports with a `Status` body and this HTTP code. */
export class KubeStatusError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly details: StatusDetails | undefined;

  constructor(code: number, reason: string, message: string, details?: StatusDetails) {
    super(message);
    this.name = "KubeStatusError";
    this.code = code;
    this.reason = reason;
    this.details = details;
  }

  toStatus(): KubeStatus {
    const status: KubeStatus = {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: this.message,
      reason: this.reason,
      code: this.code,
    };
    if (this.details) status.details = this.details;
    return status;
  }
}

export function qualifiedResource(gr: GroupResource): string {
  return gr.group ? `${gr.resource}.${gr.group}` : gr.resource;
}

function resourceDetails(gr: GroupResource, name: string): StatusDetails {
  const details: StatusDetails = { name };
  if (gr.group) details.group = gr.group;
  details.kind = gr.resource;
  return details;
}

export function notFound(gr: GroupResource, name: string): KubeStatusError {
  return new KubeStatusError(404, "NotFound", `${qualifiedResource(gr)} "${name}" not found`, resourceDetails(gr, name));
}

/** 404 for a path that names no served resource (the real server answers this for unknown resources too). */
export function pathNotFound(): KubeStatusError {
  return new KubeStatusError(404, "NotFound", "the server could not find the requested resource", {});
}

export function alreadyExists(gr: GroupResource, name: string): KubeStatusError {
  return new KubeStatusError(
    409,
    "AlreadyExists",
    `${qualifiedResource(gr)} "${name}" already exists`,
    resourceDetails(gr, name),
  );
}

export const CONFLICT_MODIFIED =
  "the object has been modified; please apply your changes to the latest version and try again";

export function conflict(gr: GroupResource, name: string, why: string = CONFLICT_MODIFIED): KubeStatusError {
  return new KubeStatusError(
    409,
    "Conflict",
    `Operation cannot be fulfilled on ${qualifiedResource(gr)} "${name}": ${why}`,
    resourceDetails(gr, name),
  );
}

export function forbidden(gr: GroupResource, name: string, why: string, causes?: StatusCause[]): KubeStatusError {
  const details = resourceDetails(gr, name);
  if (causes) details.causes = causes;
  const subject = name ? `${qualifiedResource(gr)} "${name}"` : qualifiedResource(gr);
  return new KubeStatusError(403, "Forbidden", `${subject} is forbidden: ${why}`, details);
}

export function badRequest(message: string): KubeStatusError {
  return new KubeStatusError(400, "BadRequest", message);
}

export function methodNotAllowed(): KubeStatusError {
  return new KubeStatusError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
}

/** 410 for a resourceVersion or continue token older than the retained history. */
export function expired(message: string): KubeStatusError {
  return new KubeStatusError(410, "Expired", message);
}

export function unauthorized(): KubeStatusError {
  return new KubeStatusError(401, "Unauthorized", "Unauthorized");
}

export function requestTooLarge(limitBytes: number): KubeStatusError {
  return new KubeStatusError(413, "RequestEntityTooLarge", `Request entity too large: limit is ${limitBytes}`);
}

export function unsupportedMediaType(contentType: string, accepted: string[]): KubeStatusError {
  return new KubeStatusError(
    415,
    "UnsupportedMediaType",
    `the body of the request was in an unknown format - accepted media types include: ${accepted.join(", ")}` +
      (contentType ? ` (got ${contentType})` : ""),
  );
}

export function internalError(message: string): KubeStatusError {
  return new KubeStatusError(500, "InternalError", `Internal error occurred: ${message}`, {
    causes: [{ message }],
  });
}

export function timeoutError(message: string): KubeStatusError {
  return new KubeStatusError(504, "Timeout", message);
}

/** One field problem, reported the way apimachinery's field.Error formats it. */
export interface FieldError {
  type: "Required" | "Invalid" | "NotSupported" | "Forbidden" | "TypeInvalid" | "Duplicate" | "TooLong";
  field: string;
  value?: unknown;
  /** The value as Go's validation prints it (`map[string]string{"app":"x"}`), when the JSON rendering differs. */
  valueText?: string;
  detail?: string;
  supported?: string[];
}

const FIELD_REASONS: Record<FieldError["type"], string> = {
  Required: "FieldValueRequired",
  Invalid: "FieldValueInvalid",
  NotSupported: "FieldValueNotSupported",
  Forbidden: "FieldValueForbidden",
  TypeInvalid: "FieldValueTypeInvalid",
  Duplicate: "FieldValueDuplicate",
  TooLong: "FieldValueTooLong",
};

function formatValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value);
  if (Array.isArray(value)) return "array";
  if (value === undefined) return '""';
  return "object";
}

export function formatFieldErrorBody(e: FieldError): string {
  const suffix = e.detail ? `: ${e.detail}` : "";
  switch (e.type) {
    case "Required":
      return `Required value${suffix}`;
    case "Forbidden":
      return `Forbidden${suffix}`;
    case "Duplicate":
      return `Duplicate value: ${formatValue(e.value)}`;
    case "NotSupported":
      return `Unsupported value: ${formatValue(e.value)}: supported values: ${(e.supported ?? [])
        .map((s) => JSON.stringify(s))
        .join(", ")}`;
    case "TooLong":
      return `Too long${suffix}`;
    case "Invalid":
    case "TypeInvalid":
      return `Invalid value: ${e.valueText ?? formatValue(e.value)}${suffix}`;
  }
}

/** 422 Invalid: `Kind.group "name" is invalid: field: problem` with one cause per field error. */
export function invalid(kind: string, group: string, name: string, errors: FieldError[]): KubeStatusError {
  const parts = errors.map((e) => `${e.field}: ${formatFieldErrorBody(e)}`);
  const summary = parts.length === 1 ? parts[0] : `[${parts.join(", ")}]`;
  const qualifiedKind = group ? `${kind}.${group}` : kind;
  // An empty name is left out, as Go's omitempty does (DeleteOptions errors have none).
  const details: StatusDetails = name ? { name } : {};
  if (group) details.group = group;
  details.kind = kind;
  details.causes = errors.map((e) => ({ reason: FIELD_REASONS[e.type], message: formatFieldErrorBody(e), field: e.field }));
  return new KubeStatusError(422, "Invalid", `${qualifiedKind} "${name}" is invalid: ${summary}`, details);
}
