import { setTimeout as sleepTimer } from "node:timers/promises";
import type { Agent } from "node:http";
import type { WorkloadIdentityCredentialOptions } from "@azure/identity";

/**
 * Until the endpoint has answered once (per credential), how quickly to decide that nothing is there, so that
 * off-cluster a ChainedTokenCredential moves on at once instead of after the whole retry budget.
 */
export interface PodIdentityFirstContactOptions {
  /** Connect timeout per attempt before the first answer; when it expires, getToken fails (ENDPOINT_UNREACHABLE). */
  connectTimeoutMs?: number;
  /**
   * In a pod (env KUBERNETES_SERVICE_HOST set), refused connections before the first answer are retried for this
   * long: NMI keeps its interception while it restarts, so its port refuses until it is back. Outside a pod a
   * refused connection fails at once.
   */
  refusedMaxElapsedMs?: number;
}

/** Retry budget for one token acquisition. */
export interface PodIdentityRetryOptions {
  /** Retries after the first attempt (a 410 keeps retrying for at least 70 s regardless, as IMDS promises). */
  maxRetries?: number;
  /** No new attempt starts once this much time has passed since the first one. */
  maxElapsedMs?: number;
  /** First backoff delay; doubles per retry, with jitter, up to maxDelayMs. */
  initialDelayMs?: number;
  /** Cap for one backoff delay (a server's Retry-After is honoured even when longer). */
  maxDelayMs?: number;
}

export interface PodIdentityCredentialOptions {
  /** Client ID of the user-assigned identity to ask for (`client_id`). At most one of clientId/resourceId/objectId. */
  clientId?: string;
  /** ARM resource ID of the user-assigned identity (`msi_res_id`). */
  resourceId?: string;
  /** Object (principal) ID of the user-assigned identity (`object_id`). */
  objectId?: string;
  /** Base URL of the IMDS endpoint. Default: env AZURE_POD_IDENTITY_AUTHORITY_HOST, else http://169.254.169.254. */
  endpoint?: string;
  retry?: PodIdentityRetryOptions;
  /** How fast to give up while the endpoint has never answered (off-cluster, NMI restarting). */
  firstContact?: PodIdentityFirstContactOptions;
  /** TCP connect timeout per attempt, once the endpoint has answered at least once. */
  connectTimeoutMs?: number;
  /** Timeout per attempt, response body included; must outlast NMI's 20 s assignment hold. */
  timeoutMs?: number;
  /** Refresh starts at min(half-life, expiry − refreshWindowMs). */
  refreshWindowMs?: number;
  /** How many (identity, resource) tokens one credential keeps. */
  maxCachedTokens?: number;
  /** Options passed to @azure/identity's WorkloadIdentityCredential when workload identity is in use. */
  workloadIdentity?: Omit<WorkloadIdentityCredentialOptions, "clientId" | "tenantId" | "tokenFilePath">;
  /**
   * node:http Agent for the IMDS requests (an https.Agent for an https:// endpoint). Default: a private keep-alive
   * Agent, so neither the global agent nor a proxy is ever used. Destroyed by close() only when it is the default.
   */
  agent?: Agent;
  /** Clock (ms since epoch), injectable for tests. */
  now?: () => number;
  /** Backoff sleep, injectable for tests; must reject when `signal` aborts. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Jitter source in [0, 1), injectable for tests. */
  random?: () => number;
}

/** Every default of PodIdentityCredential, in one place (units in the names). */
export const DEFAULT_POD_IDENTITY_CREDENTIAL_OPTIONS = {
  endpoint: "http://169.254.169.254",
  retry: {
    maxRetries: 20,
    // Long enough for an identity assignment to complete (VMSS: 40–60 s) and for IMDS's 410 "within 70 s".
    maxElapsedMs: 90_000,
    initialDelayMs: 500,
    maxDelayMs: 10_000,
  },
  firstContact: {
    // IMDS and NMI (a local DNAT) accept a connection in well under a millisecond; 1 s keeps the whole
    // off-cluster failure within 2 s, like @azure/identity's 1 s IMDS probe.
    connectTimeoutMs: 1_000,
    // A rolling NMI restart takes seconds; past this, the app's caller hears CredentialUnavailableError.
    refusedMaxElapsedMs: 15_000,
  },
  connectTimeoutMs: 2_000,
  // NMI holds a pending request up to 20 s (--wait-for-assignment); giving up before would waste the hold.
  timeoutMs: 30_000,
  refreshWindowMs: 5 * 60_000,
  maxCachedTokens: 100,
  /** IMDS documents that a 410 resolves "within 70 seconds": retried at least this long whatever maxRetries says. */
  goneMinRetryMs: 70_000,
  /** Larger responses are refused: a token answer is a few KB, even v1.8's multi-tenant array. */
  maxResponseBytes: 256 * 1024,
  /**
   * After a failed background refresh, the next one waits this long (the cached token is served meanwhile):
   * otherwise a busy app would start a new refresh right after each failure, hammering a refusing endpoint.
   */
  failedRefreshCooldownMs: 30_000,
  /** A token closer than this to its expiry is not served: a request signed with it could arrive too late. */
  expirySkewMs: 10_000,
} as const;

export type IdentitySelector =
  | { kind: "system" }
  | { kind: "client_id" | "msi_res_id" | "object_id"; value: string };

export interface WorkloadIdentitySettings {
  clientId: string;
  tenantId: string;
  tokenFilePath: string;
}

/** Options after validation and defaulting; what the credential's parts are built from. */
export interface ResolvedOptions {
  endpoint: URL;
  selector: IdentitySelector;
  workloadIdentity: WorkloadIdentitySettings | undefined;
  retry: Required<PodIdentityRetryOptions>;
  firstContact: Required<PodIdentityFirstContactOptions>;
  /** Env KUBERNETES_SERVICE_HOST was set: a refused connection before the first answer may be NMI restarting. */
  inPod: boolean;
  connectTimeoutMs: number;
  timeoutMs: number;
  refreshWindowMs: number;
  maxCachedTokens: number;
  now: () => number;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  random: () => number;
}

const NAME = "PodIdentityCredential";

function nonNegative(value: number | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new RangeError(`${NAME}: option ${name} must be a finite number >= 0, got ${String(value)}.`);
  }
  return value;
}

function nonEmpty(value: string | undefined, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value.trim() === "") {
    throw new TypeError(`${NAME}: option ${name} must be a non-empty string.`);
  }
  return value.trim();
}

function parseEndpoint(raw: string, source: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch (error) {
    throw new TypeError(`${NAME}: ${source} is not a valid URL: "${raw}".`, { cause: error });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(
      `${NAME}: ${source} must be an http:// or https:// URL such as http://169.254.169.254, got "${raw}".`,
    );
  }
  url.search = "";
  url.hash = "";
  url.pathname = url.pathname.replace(/\/+$/, "");
  return url;
}

function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return sleepTimer(ms, undefined, { signal });
}

/**
 * Validates the options and reads the environment once, so a credential never changes behaviour because
 * the environment changed after construction.
 */
export function resolveOptions(options: PodIdentityCredentialOptions, env: NodeJS.ProcessEnv): ResolvedOptions {
  const clientId = nonEmpty(options.clientId, "clientId");
  const resourceId = nonEmpty(options.resourceId, "resourceId");
  const objectId = nonEmpty(options.objectId, "objectId");
  const given = [
    clientId !== undefined && "clientId",
    resourceId !== undefined && "resourceId",
    objectId !== undefined && "objectId",
  ].filter((name): name is string => typeof name === "string");
  if (given.length > 1) {
    throw new TypeError(
      `${NAME}: options ${given.join(" and ")} are mutually exclusive; pass at most one of clientId, resourceId, objectId.`,
    );
  }

  const envClientId = env.AZURE_CLIENT_ID?.trim() || undefined;
  let selector: IdentitySelector = { kind: "system" };
  if (clientId !== undefined) selector = { kind: "client_id", value: clientId };
  else if (resourceId !== undefined) selector = { kind: "msi_res_id", value: resourceId };
  else if (objectId !== undefined) selector = { kind: "object_id", value: objectId };
  else if (envClientId !== undefined) selector = { kind: "client_id", value: envClientId };

  const endpointEnv = env.AZURE_POD_IDENTITY_AUTHORITY_HOST?.trim() || undefined;
  const endpoint =
    options.endpoint !== undefined
      ? parseEndpoint(options.endpoint, "option endpoint")
      : endpointEnv !== undefined
        ? parseEndpoint(endpointEnv, "env AZURE_POD_IDENTITY_AUTHORITY_HOST")
        : parseEndpoint(DEFAULT_POD_IDENTITY_CREDENTIAL_OPTIONS.endpoint, "default endpoint");

  // Workload identity can only pick its app by client ID; a resourceId/objectId names a managed identity.
  const tokenFilePath = env.AZURE_FEDERATED_TOKEN_FILE?.trim() || undefined;
  const tenantId = env.AZURE_TENANT_ID?.trim() || undefined;
  const wiClientId = clientId ?? envClientId;
  const workloadIdentity =
    tokenFilePath !== undefined && tenantId !== undefined && wiClientId !== undefined && selector.kind !== "msi_res_id" && selector.kind !== "object_id"
      ? { clientId: wiClientId, tenantId, tokenFilePath }
      : undefined;

  const d = DEFAULT_POD_IDENTITY_CREDENTIAL_OPTIONS;
  const retry = options.retry ?? {};
  const maxRetries = nonNegative(retry.maxRetries, "retry.maxRetries", d.retry.maxRetries);
  if (!Number.isInteger(maxRetries)) {
    throw new RangeError(`${NAME}: option retry.maxRetries must be an integer, got ${maxRetries}.`);
  }
  const resolvedRetry = {
    maxRetries,
    maxElapsedMs: nonNegative(retry.maxElapsedMs, "retry.maxElapsedMs", d.retry.maxElapsedMs),
    initialDelayMs: nonNegative(retry.initialDelayMs, "retry.initialDelayMs", d.retry.initialDelayMs),
    maxDelayMs: nonNegative(retry.maxDelayMs, "retry.maxDelayMs", d.retry.maxDelayMs),
  };
  if (resolvedRetry.maxDelayMs < resolvedRetry.initialDelayMs) {
    throw new RangeError(`${NAME}: option retry.maxDelayMs must be >= retry.initialDelayMs.`);
  }
  const timeoutMs = nonNegative(options.timeoutMs, "timeoutMs", d.timeoutMs);
  const connectTimeoutMs = nonNegative(options.connectTimeoutMs, "connectTimeoutMs", d.connectTimeoutMs);
  if (timeoutMs === 0 || connectTimeoutMs === 0) {
    throw new RangeError(`${NAME}: options timeoutMs and connectTimeoutMs must be > 0.`);
  }
  const firstContact = {
    connectTimeoutMs: nonNegative(options.firstContact?.connectTimeoutMs, "firstContact.connectTimeoutMs", d.firstContact.connectTimeoutMs),
    refusedMaxElapsedMs: nonNegative(
      options.firstContact?.refusedMaxElapsedMs,
      "firstContact.refusedMaxElapsedMs",
      d.firstContact.refusedMaxElapsedMs,
    ),
  };
  if (firstContact.connectTimeoutMs === 0) {
    throw new RangeError(`${NAME}: option firstContact.connectTimeoutMs must be > 0.`);
  }
  const maxCachedTokens = nonNegative(options.maxCachedTokens, "maxCachedTokens", d.maxCachedTokens);
  if (!Number.isInteger(maxCachedTokens) || maxCachedTokens < 1) {
    throw new RangeError(`${NAME}: option maxCachedTokens must be an integer >= 1.`);
  }

  return {
    endpoint,
    selector,
    workloadIdentity,
    retry: resolvedRetry,
    firstContact,
    inPod: (env.KUBERNETES_SERVICE_HOST?.trim() ?? "") !== "",
    connectTimeoutMs,
    timeoutMs,
    refreshWindowMs: nonNegative(options.refreshWindowMs, "refreshWindowMs", d.refreshWindowMs),
    maxCachedTokens,
    now: options.now ?? Date.now,
    sleep: options.sleep ?? defaultSleep,
    random: options.random ?? Math.random,
  };
}
