import type { KubeStatus } from "./types";

/**
 * The API server refused a request (`status` >= 400, `body` its parsed Status when it sent JSON), or could not be
 * reached or answered in time (`status` 0, `reason` Unreachable/Timeout/StreamBroken, `cause` kept). Messages
 * name the method and path, never a credential.
 */
export class KubeApiError extends Error {
  readonly code = "KUBE_API_ERROR";
  /** HTTP status; 0 when there was no HTTP answer. */
  readonly status: number;
  /** The Status reason (`NotFound`, `Conflict`, `Expired`, …) or, for status 0, what went wrong. */
  readonly reason: string;
  /** The parsed Status when the server answered JSON, else the answer's text (at most 1 KiB), else undefined. */
  readonly body: KubeStatus | string | undefined;
  readonly method: string;
  readonly path: string;

  constructor(init: { status: number; reason: string; message: string; method: string; path: string; body?: KubeStatus | string }, options?: { cause?: unknown }) {
    super(`${init.method} ${init.path}: ${init.status === 0 ? "" : `${init.status} `}${init.reason}${init.message ? `: ${init.message}` : ""}`, options);
    this.name = "KubeApiError";
    this.status = init.status;
    this.reason = init.reason;
    this.body = init.body;
    this.method = init.method;
    this.path = init.path;
  }

  /** Same as `status`, under the name Node's and undici's errors use. */
  get statusCode(): number {
    return this.status;
  }

  get isNotFound(): boolean {
    return this.status === 404;
  }

  get isConflict(): boolean {
    return this.status === 409;
  }

  /** The resourceVersion is older than the server's history (410 Gone / Expired): list again. */
  get isGone(): boolean {
    return this.status === 410;
  }

  get isForbidden(): boolean {
    return this.status === 403;
  }

  /** From a response the server sent: its Status when the body is one, else its text. */
  static fromResponse(status: number, text: string, method: string, path: string): KubeApiError {
    let body: KubeStatus | string = text.slice(0, 1024);
    try {
      const parsed = JSON.parse(text) as unknown;
      if (typeof parsed === "object" && parsed !== null) body = parsed as KubeStatus;
    } catch {
      // Not JSON (a proxy's HTML page, say): keep the text.
    }
    const status_ = typeof body === "object" ? body : undefined;
    const reason = typeof status_?.reason === "string" && status_.reason !== "" ? status_.reason : String(status);
    const message = typeof status_?.message === "string" ? status_.message : typeof body === "string" ? body.slice(0, 200) : "";
    return new KubeApiError({ status, reason, message, method, path, body });
  }

  /** From a watch ERROR event's Status object. */
  static fromStatus(status: KubeStatus, method: string, path: string): KubeApiError {
    return new KubeApiError({ status: status.code ?? 500, reason: status.reason ?? "WatchError", message: status.message ?? "", method, path, body: status });
  }
}

/** A kubeconfig (or the in-cluster environment) that cannot be used; names the file and the field. */
export class KubeConfigError extends Error {
  readonly code = "KUBE_CONFIG_INVALID";
  /** The kubeconfig file, or `in-cluster`. */
  readonly source: string;
  /** The field at fault, e.g. `clusters[dev].cluster.server`; undefined when the file as a whole is at fault. */
  readonly field: string | undefined;

  constructor(source: string, field: string | undefined, message: string, options?: { cause?: unknown }) {
    super(`kubeconfig ${source}${field === undefined ? "" : ` (${field})`}: ${message}`, options);
    this.name = "KubeConfigError";
    this.source = source;
    this.field = field;
  }
}

/** An exec credential plugin failed or printed something that is not an ExecCredential. */
export class ExecCredentialError extends Error {
  readonly code = "KUBE_EXEC_CREDENTIAL_FAILED";
  readonly command: string;

  constructor(command: string, message: string, options?: { cause?: unknown }) {
    super(`exec credential plugin ${command}: ${message}`, options);
    this.name = "ExecCredentialError";
    this.command = command;
  }
}
