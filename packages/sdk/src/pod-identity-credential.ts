import type { AccessToken, GetTokenOptions, TokenCredential } from "@azure/core-auth";
import { logger, publish } from "./diagnostics";
import { isPodIdentityError, PodIdentityAbortError, PodIdentityUnavailableError } from "./errors";
import { ImdsClient } from "./imds-client";
import { DEFAULT_POD_IDENTITY_CREDENTIAL_OPTIONS, resolveOptions } from "./pod-identity-credential-options";
import type { PodIdentityCredentialOptions, ResolvedOptions } from "./pod-identity-credential-options";
import { RetryPolicy } from "./retry-policy";
import type { RetryEvent } from "./retry-policy";
import { scopeToResource } from "./scopes";
import { SingleFlight } from "./single-flight";
import { TokenCache } from "./token-cache";
import type { TokenSource } from "./token-source";
import { WorkloadIdentitySource } from "./workload-identity-source";

/**
 * A drop-in TokenCredential for apps in pods on aad-pod-identity (NMI) clusters, and on workload identity
 * clusters so apps survive the migration. Create one per process and share it: the cache, the single-flight
 * and the background refresh all live in the instance.
 */
export class PodIdentityCredential implements TokenCredential {
  /** Where tokens come from: the IMDS-compatible endpoint, or Entra ID through workload identity. */
  readonly mode: "imds" | "workload-identity";
  /** The IMDS endpoint (imds mode) or a description of the workload identity settings. */
  readonly target: string;
  private readonly options: ResolvedOptions;
  private readonly source: TokenSource;
  private readonly cache: TokenCache;
  private readonly flights = new SingleFlight<AccessToken>();
  private readonly retryPolicy: RetryPolicy;
  private readonly identity: string;
  /** scope → (resource, cache key): apps ask for the same few scopes millions of times. */
  private readonly scopeKeys = new Map<string, { resource: string; key: string }>();
  /** Flight key → the failure of its latest attempt, while it retries: the cause of a caller's TIMEOUT. */
  private readonly lastAttemptFailure = new Map<string, PodIdentityUnavailableError>();
  /** Cache key → earliest time for the next background refresh after one failed. */
  private readonly refreshCooldownUntil = new Map<string, number>();

  constructor(options: PodIdentityCredentialOptions = {}) {
    this.options = resolveOptions(options, process.env);
    const o = this.options;
    if (o.workloadIdentity !== undefined) {
      this.source = new WorkloadIdentitySource(o.workloadIdentity, options.workloadIdentity);
      this.identity = `workload_identity=${o.workloadIdentity.clientId}`;
    } else {
      this.source = new ImdsClient({
        endpoint: o.endpoint,
        selector: o.selector,
        connectTimeoutMs: o.connectTimeoutMs,
        firstContactConnectTimeoutMs: o.firstContact.connectTimeoutMs,
        refusedMaxElapsedMs: o.firstContact.refusedMaxElapsedMs,
        inPod: o.inPod,
        timeoutMs: o.timeoutMs,
        now: o.now,
        ...(options.agent === undefined ? {} : { agent: options.agent }),
      });
      this.identity = o.selector.kind === "system" ? "system" : `${o.selector.kind}=${o.selector.value}`;
    }
    this.mode = this.source.kind;
    this.target = this.source.description;
    this.cache = new TokenCache({
      maxEntries: o.maxCachedTokens,
      refreshWindowMs: o.refreshWindowMs,
      expirySkewMs: DEFAULT_POD_IDENTITY_CREDENTIAL_OPTIONS.expirySkewMs,
      now: o.now,
    });
    this.retryPolicy = new RetryPolicy(o.retry, o.random);
    logger.info(`PodIdentityCredential: using ${this.target} for identity ${this.identity}`);
  }

  /**
   * A token for the single scope (`/.default` stripped to the IMDS resource). Served from the cache while valid;
   * inside the refresh window the cached token is returned at once and a refresh runs in the background.
   * `claims` skips the cache; `tenantId` is ignored because the identity decides the tenant.
   */
  async getToken(scopes: string | string[], options: GetTokenOptions = {}): Promise<AccessToken> {
    const { resource, key } = this.resolveScope(scopes);
    if (options.claims === undefined) {
      const cached = this.cache.lookup(key);
      if (cached.state === "fresh") return cached.token;
      if (cached.state === "stale") {
        this.refreshInBackground(key, resource, cached.token);
        return cached.token;
      }
    }
    if (options.abortSignal?.aborted) throw new PodIdentityAbortError(undefined, { cause: (options.abortSignal as { reason?: unknown }).reason });
    // A claims challenge (CAE) needs a new token; it replaces the cached one, but never joins a plain flight.
    const flightKey = options.claims === undefined ? key : `${key}\u0000claims=${options.claims}`;
    const timeoutMs = options.requestOptions?.timeout;
    return this.flights.run(flightKey, (signal) => this.acquire(key, flightKey, resource, signal, false, options.claims), {
      ...(options.abortSignal === undefined ? {} : { signal: options.abortSignal }),
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
      onAbort: (reason) => new PodIdentityAbortError(undefined, { cause: reason }),
      onTimeout: (ms) => {
        const last = this.lastAttemptFailure.get(flightKey);
        return new PodIdentityUnavailableError(
          "TIMEOUT",
          `PodIdentityCredential: no token for ${resource} within requestOptions.timeout=${ms} ms ` +
            "(the endpoint may be holding the request while the identity is assigned; allow more time)." +
            (last === undefined ? "" : ` Last failure: ${last.message}`),
          last === undefined ? {} : { cause: last, statusCode: last.statusCode, errorBody: last.errorBody },
        );
      },
    });
  }

  /** Cancels running acquisitions and releases sockets. The credential must not be used afterwards. */
  async close(): Promise<void> {
    this.flights.abortAll(new Error("PodIdentityCredential: closed."));
    this.cache.clear();
    await this.source.close();
  }

  private resolveScope(scopes: string | string[]): { resource: string; key: string } {
    const single = typeof scopes === "string" ? scopes : scopes.length === 1 ? scopes[0]! : undefined;
    const known = single === undefined ? undefined : this.scopeKeys.get(single);
    if (known !== undefined) return known;
    const resource = scopeToResource(scopes);
    const resolved = { resource, key: TokenCache.key(this.identity, resource) };
    // Bounded: a caller inventing scopes must not grow memory without limit.
    if (single !== undefined && this.scopeKeys.size < 256) this.scopeKeys.set(single, resolved);
    return resolved;
  }

  private refreshInBackground(key: string, resource: string, current: AccessToken): void {
    const cooldownUntil = this.refreshCooldownUntil.get(key);
    if (cooldownUntil !== undefined && this.options.now() < cooldownUntil) return;
    const started = this.flights.runInBackground(key, (signal) => this.acquire(key, key, resource, signal, true));
    if (started === undefined) return;
    this.refreshCooldownUntil.delete(key);
    started.catch(() => {
      // Logged and published in acquire(); here only the pause before the next background attempt.
      this.refreshCooldownUntil.set(key, this.options.now() + DEFAULT_POD_IDENTITY_CREDENTIAL_OPTIONS.failedRefreshCooldownMs);
    });
    logger.verbose(`PodIdentityCredential: background refresh of the token for ${resource} started`);
    publish("refresh", () => ({
      ...this.eventBase(resource),
      expiresOnTimestamp: current.expiresOnTimestamp,
      refreshAfterTimestamp: current.refreshAfterTimestamp!,
    }));
  }

  private async acquire(
    key: string,
    flightKey: string,
    resource: string,
    signal: AbortSignal,
    background: boolean,
    claims?: string,
  ): Promise<AccessToken> {
    const startedAt = this.options.now();
    let attempts = 0;
    try {
      const upstream = await this.retryPolicy.run(
        (attemptSignal) => {
          attempts++;
          return this.source.requestToken(resource, attemptSignal, claims);
        },
        {
          now: this.options.now,
          sleep: this.options.sleep,
          signal,
          onRetry: (event) => {
            this.lastAttemptFailure.set(flightKey, event.failure);
            this.onRetry(resource, background, event);
          },
        },
      );
      const token = this.cache.store(key, upstream);
      const durationMs = this.options.now() - startedAt;
      logger.info(
        `PodIdentityCredential: token for ${resource} acquired after ${attempts} attempt(s) in ${durationMs} ms; ` +
          `expires ${new Date(token.expiresOnTimestamp).toISOString()}, refresh after ${new Date(token.refreshAfterTimestamp!).toISOString()}`,
      );
      publish("acquire", () => ({
        ...this.eventBase(resource),
        background,
        attempts,
        durationMs,
        expiresOnTimestamp: token.expiresOnTimestamp,
        refreshAfterTimestamp: token.refreshAfterTimestamp!,
      }));
      return token;
    } catch (error) {
      if (!signal.aborted) this.onFailure(resource, background, error);
      throw error;
    } finally {
      this.lastAttemptFailure.delete(flightKey);
    }
  }

  private onRetry(resource: string, background: boolean, event: RetryEvent): void {
    const failure = event.failure;
    const reason = failure.errorBody?.error ?? networkCode(failure.cause);
    // "503 podidentity_pending", "ECONNREFUSED": the code is what the README's troubleshooting table is keyed on.
    const code = reason === `http_${failure.statusCode}` ? undefined : reason; // a body-less answer has no code of its own
    const what = [failure.statusCode, code].filter((part) => part !== undefined).join(" ") || "no answer";
    logger.info(`PodIdentityCredential: attempt ${event.retry} for ${resource} failed (${what}); retrying in ${Math.round(event.delayMs)} ms`);
    publish("retry", () => ({
      ...this.eventBase(resource),
      background,
      retry: event.retry,
      delayMs: event.delayMs,
      elapsedMs: event.elapsedMs,
      statusCode: failure.statusCode,
      reason,
      retryAfterMs: failure.retryAfterMs,
    }));
  }

  private onFailure(resource: string, background: boolean, error: unknown): void {
    const err = error instanceof Error ? error : new Error(String(error));
    const typed = isPodIdentityError(err) ? err : undefined;
    logger.warning(
      background
        ? `PodIdentityCredential: background refresh of the token for ${resource} failed; the cached token is served until it expires: ${err.message}`
        : `PodIdentityCredential: no token for ${resource}: ${err.message}`,
    );
    publish("error", () => ({
      ...this.eventBase(resource),
      background,
      code: typed?.code,
      statusCode: typed?.statusCode,
      reason: typed?.errorBody?.error,
      servedCachedToken: background,
      error: err,
    }));
  }

  private eventBase(resource: string): { resource: string; identity: string; source: "imds" | "workload-identity" } {
    return { resource, identity: this.identity, source: this.mode };
  }
}

function networkCode(cause: unknown): string | undefined {
  const code = (cause as { code?: unknown } | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}
