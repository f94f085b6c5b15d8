import type { UpstreamToken } from "./parse-token-response";

/**
 * Where tokens come from: the IMDS-compatible endpoint (NMI on pod identity clusters) or Entra ID through
 * workload identity. One attempt per call; the credential adds caching, single-flight and retries on top.
 */
export interface TokenSource {
  readonly kind: "imds" | "workload-identity";
  /** A description for logs and events, e.g. the endpoint URL. Never secret. */
  readonly description: string;
  /**
   * One attempt. Rejects with a PodIdentityUnavailableError (TRANSIENT_FAILURE when worth retrying) or a
   * PodIdentityAuthenticationError; with the signal's reason when the signal aborts.
   */
  requestToken(resource: string, signal: AbortSignal, claims?: string): Promise<UpstreamToken>;
  /** Releases sockets held by the source. */
  close(): Promise<void>;
}
