import { channel } from "node:diagnostics_channel";
import { createClientLogger } from "@azure/logger";
import type { PodIdentityErrorCode } from "./errors";

/**
 * Logs go to @azure/logger's `azure:podidentity:{error,warning,info,verbose}` (enable with AZURE_LOG_LEVEL or
 * setLogLevel). Nothing logged or published ever contains a token.
 */
export const logger = createClientLogger("podidentity");

/** The `node:diagnostics_channel` names this package publishes on. Payloads are documented in the README. */
export const DIAGNOSTICS_CHANNELS = {
  /** A new token arrived from upstream (and was cached). */
  acquire: "podidentity:token:acquire",
  /** A proactive background refresh started while a valid cached token is being served. */
  refresh: "podidentity:token:refresh",
  /** An attempt failed in a retryable way; the next one follows after `delayMs`. */
  retry: "podidentity:token:retry",
  /** An acquisition failed for good (after retries). `servedCachedToken` tells whether callers were spared. */
  error: "podidentity:token:error",
} as const;

interface TokenEventBase {
  /** The IMDS `resource`, e.g. "https://vault.azure.net". */
  resource: string;
  /** "system", or "client_id=…", "msi_res_id=…", "object_id=…" (identifiers, not secrets). */
  identity: string;
  source: "imds" | "workload-identity";
}

export interface TokenAcquireEvent extends TokenEventBase {
  background: boolean;
  /** Attempts made, retries included. */
  attempts: number;
  durationMs: number;
  expiresOnTimestamp: number;
  refreshAfterTimestamp: number;
}

export interface TokenRefreshEvent extends TokenEventBase {
  /** Expiry of the cached token being served meanwhile. */
  expiresOnTimestamp: number;
  refreshAfterTimestamp: number;
}

export interface TokenRetryEvent extends TokenEventBase {
  background: boolean;
  /** 1 for the first retry. */
  retry: number;
  delayMs: number;
  elapsedMs: number;
  statusCode: number | undefined;
  /** The body's `error` (e.g. "podidentity_pending") or the network error code (e.g. "ECONNREFUSED"). */
  reason: string | undefined;
  retryAfterMs: number | undefined;
}

export interface TokenErrorEvent extends TokenEventBase {
  background: boolean;
  /** This package's stable code, e.g. "RETRY_EXHAUSTED". */
  code: PodIdentityErrorCode | undefined;
  statusCode: number | undefined;
  /** The body's `error`, e.g. "podidentity_no_binding". */
  reason: string | undefined;
  /** True when a valid cached token kept being served, so no caller saw this error. */
  servedCachedToken: boolean;
  error: Error;
}

const channels = {
  acquire: channel(DIAGNOSTICS_CHANNELS.acquire),
  refresh: channel(DIAGNOSTICS_CHANNELS.refresh),
  retry: channel(DIAGNOSTICS_CHANNELS.retry),
  error: channel(DIAGNOSTICS_CHANNELS.error),
};

interface EventPayloads {
  acquire: TokenAcquireEvent;
  refresh: TokenRefreshEvent;
  retry: TokenRetryEvent;
  error: TokenErrorEvent;
}

/** Publishes only when someone listens: payloads are built lazily so the cached path stays cheap. */
export function publish<K extends keyof EventPayloads>(name: K, payload: () => EventPayloads[K]): void {
  const target = channels[name];
  if (target.hasSubscribers) target.publish(payload());
}
