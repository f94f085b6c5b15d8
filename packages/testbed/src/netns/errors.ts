/**
 * The one error class of the network-namespace topology. `code` is stable; messages say what to do.
 */
export type NetnsErrorCode =
  /** The topology was asked to run outside a private network namespace made by `spawnInPrivateNetns`. */
  | "NOT_IN_PRIVATE_NETNS"
  /** Neither root nor unprivileged user namespaces are available. */
  | "PRIVATE_NETNS_UNAVAILABLE"
  /** An `ip`, `iptables` or `mount` command failed; `details.stderr` has its output. */
  | "COMMAND_FAILED"
  /** A process run with `run…` did not exit within `timeoutMs`; `details` holds its output so far. */
  | "TIMEOUT"
  /** A node or pod name that the topology does not know, or a pod that is not placed yet. */
  | "NOT_FOUND"
  /** An argument that cannot be right (duplicate name, too many nodes, bad address). */
  | "INVALID_ARGUMENT"
  /** The Kubernetes API answered an unexpected status; `details.statusCode` and `details.body` are set. */
  | "KUBE_REQUEST_FAILED"
  /** The topology was closed. */
  | "CLOSED";

export class NetnsError extends Error {
  override readonly name = "NetnsError";
  readonly code: NetnsErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: NetnsErrorCode, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
  }
}
