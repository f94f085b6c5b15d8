import type { AccessToken, TokenCredential } from "@azure/core-auth";
import { canonicalResourceId } from "@podidentity/api";
import { retryAfterMs } from "@podidentity/daemon";
import type { Logger } from "pino";
import { request, type Dispatcher } from "undici";
import type { Clock } from "../clock";
import { ArmRequestError } from "../errors";
import type { ComputeTarget } from "./compute-target";
import { failedIdentityIds } from "./failed-identities";
import { planIdentityPatches, type IdentityDelta, type IdentityPatch } from "./identity-delta";
import type { WriteBudget } from "./write-budget";

/** One user-assigned identity as the VM/VMSS shows it; null IDs mean the identity was deleted (and maybe re-created). */
export interface ObservedIdentity {
  readonly resourceId: string;
  readonly clientId: string | null;
  readonly principalId: string | null;
}

export interface ComputeIdentityState {
  readonly exists: boolean;
  readonly type: string;
  /** Canonical ID → what ARM shows. */
  readonly userAssigned: ReadonlyMap<string, ObservedIdentity>;
  readonly provisioningState?: string;
}

export interface ArmCallObserver {
  armCall(operation: string, statusCode: number, durationMs: number): void;
  throttled(operation: string, waitMs: number): void;
}

export const DEFAULT_COMPUTE_CLIENT_OPTIONS = {
  /** v1.8 used 2019-12-01; any version with `identity.userAssignedIdentities` as a map works. */
  apiVersion: "2023-09-01",
  /** LRO polling interval when ARM sends no Retry-After. */
  lroPollIntervalMs: 1_000,
  /** Give up on one long-running operation after this long. */
  lroTimeoutMs: 10 * 60_000,
  /** 429/503 answers retried (after their Retry-After) before failing the request. */
  maxThrottleRetries: 6,
  /** Retry-After assumed when a 429 carries none. */
  defaultRetryAfterMs: 5_000,
} as const;

export interface ComputeClientOptions {
  /** ARM base URL, e.g. https://management.azure.com. */
  endpoint: string;
  credential: TokenCredential;
  /** Token scope for ARM, e.g. https://management.azure.com/.default (the cloud's audience, not the endpoint). */
  scope: string;
  clock: Clock;
  writeBudget: WriteBudget;
  logger: Logger;
  dispatcher?: Dispatcher;
  observer?: ArmCallObserver;
  apiVersion?: string;
  lroPollIntervalMs?: number;
  lroTimeoutMs?: number;
  maxThrottleRetries?: number;
  defaultRetryAfterMs?: number;
}

interface ArmResponse {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown> | undefined;
}

/**
 * ARM compute for identities: GET a VM/VMSS, PATCH `identity.userAssignedIdentities` deltas. Plain undici
 * rather than @azure/arm-compute because the SDK's typed model cannot send the `null` entries that remove one
 * identity without rewriting the whole map (its serializer drops them), and because MIC must see each 429's
 * Retry-After and each LRO poll itself to keep its write budget and metrics honest.
 */
export class ComputeClient {
  readonly #o: ComputeClientOptions;
  readonly #endpoint: string;
  #token: AccessToken | undefined;

  constructor(options: ComputeClientOptions) {
    if (!/^https?:\/\//.test(options.endpoint)) throw new TypeError(`ComputeClient: endpoint must be an http(s) URL, got "${options.endpoint}"`);
    this.#o = options;
    this.#endpoint = options.endpoint.replace(/\/+$/, "");
  }

  /** Gets the ARM token ahead of the first request. */
  async warmUp(signal?: AbortSignal): Promise<void> {
    await this.#authorization(signal);
  }

  async get(target: ComputeTarget, signal?: AbortSignal): Promise<ComputeIdentityState> {
    const op = target.kind === "virtualMachineScaleSets" ? "vmss_get" : "vm_get";
    try {
      const res = await this.#send("GET", this.#url(target), op, undefined, signal);
      return parseState(res.body);
    } catch (error) {
      if (error instanceof ArmRequestError && error.statusCode === 404) return { exists: false, type: "None", userAssigned: new Map() };
      throw error;
    }
  }

  /**
   * Waits until the VM/VMSS has no operation running (provisioningState not Updating), polling GET at the LRO
   * interval, for at most the LRO timeout. Returns the state then, and whether it had to wait at all.
   */
  async waitForIdle(target: ComputeTarget, signal?: AbortSignal): Promise<{ state: ComputeIdentityState; waited: boolean }> {
    const { clock } = this.#o;
    const deadline = clock.now() + (this.#o.lroTimeoutMs ?? DEFAULT_COMPUTE_CLIENT_OPTIONS.lroTimeoutMs);
    const interval = this.#o.lroPollIntervalMs ?? DEFAULT_COMPUTE_CLIENT_OPTIONS.lroPollIntervalMs;
    for (let waited = false; ; waited = true) {
      const state = await this.get(target, signal);
      if (!/^updating$/i.test(state.provisioningState ?? "")) return { state, waited };
      if (clock.now() > deadline) {
        const op = target.kind === "virtualMachineScaleSets" ? "vmss_get" : "vm_get";
        throw new ArmRequestError(`${op}: ${target.resourceId} still Updating after the LRO timeout`, { statusCode: 200, armCode: "LroTimeout", operation: op, failedIdentityIds: [] });
      }
      await clock.sleep(interval, signal);
      if (signal?.aborted) throw signal.reason ?? new Error("aborted");
    }
  }

  /**
   * Applies `delta` to a VM/VMSS whose current identities are `current`, in as many PATCHes as the 150-entry
   * limit needs, each waiting for a write-budget token and for its long-running operation. Returns the state
   * ARM reports after the last PATCH.
   */
  async apply(target: ComputeTarget, current: ComputeIdentityState, delta: IdentityDelta, signal?: AbortSignal): Promise<ComputeIdentityState> {
    const patches = planIdentityPatches(new Set(current.userAssigned.keys()), current.type, delta);
    let state = current;
    for (const patch of patches) state = await this.#patch(target, patch, signal);
    return state;
  }

  async #patch(target: ComputeTarget, identity: IdentityPatch, signal?: AbortSignal): Promise<ComputeIdentityState> {
    const op = target.kind === "virtualMachineScaleSets" ? "vmss_update" : "vm_update";
    await this.#o.writeBudget.acquire(target.key, signal);
    const res = await this.#send("PATCH", this.#url(target), op, { identity }, signal, target.key);
    const asyncUrl = header(res.headers, "azure-asyncoperation") ?? header(res.headers, "location");
    if (asyncUrl && (res.statusCode === 200 || res.statusCode === 201 || res.statusCode === 202)) {
      await this.#waitForOperation(asyncUrl, op, res.headers, signal);
      // The PATCH response shows the identities requested while "Updating"; the operation has now succeeded.
      return { ...parseState(res.body), provisioningState: "Succeeded" };
    }
    return parseState(res.body);
  }

  async #waitForOperation(url: string, op: string, first: ArmResponse["headers"], signal?: AbortSignal): Promise<void> {
    const { clock } = this.#o;
    const deadline = clock.now() + (this.#o.lroTimeoutMs ?? DEFAULT_COMPUTE_CLIENT_OPTIONS.lroTimeoutMs);
    const interval = this.#o.lroPollIntervalMs ?? DEFAULT_COMPUTE_CLIENT_OPTIONS.lroPollIntervalMs;
    // Honour Retry-After; "0" (or none) means our own interval, never a tight loop.
    const next = (headers: ArmResponse["headers"]): number => retryAfterMs(headers, clock.now()) || interval;
    let wait = next(first);
    for (;;) {
      await clock.sleep(wait, signal);
      if (signal?.aborted) throw signal.reason ?? new Error("aborted");
      const res = await this.#send("GET", url, `${op}_poll`, undefined, signal);
      const status = String(res.body?.["status"] ?? (res.statusCode === 200 ? "Succeeded" : "InProgress"));
      if (/^succeeded$/i.test(status)) return;
      if (/^(failed|canceled|cancelled)$/i.test(status)) {
        const error = (res.body?.["error"] ?? {}) as { code?: string; message?: string };
        const code = error.code ?? status;
        const message = error.message ?? `operation ${status}`;
        throw new ArmRequestError(`${op}: long-running operation ${status}: ${code}: ${message}`, {
          statusCode: 200,
          armCode: code,
          armMessage: message,
          operation: op,
          failedIdentityIds: failedIdentityIds(code, message),
        });
      }
      if (clock.now() > deadline) {
        throw new ArmRequestError(`${op}: long-running operation still ${status} after the LRO timeout`, { statusCode: 200, armCode: "LroTimeout", operation: op, failedIdentityIds: [] });
      }
      wait = next(res.headers);
    }
  }

  #url(target: ComputeTarget): string {
    const path = `/subscriptions/${encodeURIComponent(target.subscriptionId)}/resourceGroups/${encodeURIComponent(target.resourceGroup)}/providers/Microsoft.Compute/${target.kind}/${encodeURIComponent(target.name)}`;
    return `${this.#endpoint}${path}?api-version=${this.#o.apiVersion ?? DEFAULT_COMPUTE_CLIENT_OPTIONS.apiVersion}`;
  }

  async #authorization(signal?: AbortSignal): Promise<string> {
    const now = this.#o.clock.now();
    if (!this.#token || this.#token.expiresOnTimestamp - 5 * 60_000 <= now) {
      const token = await this.#o.credential.getToken(this.#o.scope, { abortSignal: signal as never });
      if (!token) throw new ArmRequestError(`ARM credential returned no token for ${this.#o.scope}`, { statusCode: 401, armCode: "NoToken", operation: "auth", failedIdentityIds: [] });
      this.#token = token;
    }
    return `Bearer ${this.#token.token}`;
  }

  /** One ARM request; 429/503 wait out Retry-After (blocking the resource's write budget too) and retry. */
  async #send(method: "GET" | "PATCH", url: string, op: string, body: unknown, signal?: AbortSignal, budgetKey?: string): Promise<ArmResponse> {
    const { clock, observer } = this.#o;
    const maxRetries = this.#o.maxThrottleRetries ?? DEFAULT_COMPUTE_CLIENT_OPTIONS.maxThrottleRetries;
    for (let attempt = 0; ; attempt++) {
      const started = clock.now();
      const res = await request(url, {
        method,
        dispatcher: this.#o.dispatcher,
        headers: {
          authorization: await this.#authorization(signal),
          accept: "application/json",
          "user-agent": "podidentity-mic",
          ...(body !== undefined && { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
      const text = await res.body.text();
      observer?.armCall(op, res.statusCode, clock.now() - started);
      // Every answer says how much of ARM's budget is left; the write budget paces from it (arm/write-budget.ts).
      this.#o.writeBudget.observe(budgetKey, res.headers);
      let parsed: Record<string, unknown> | undefined;
      try {
        parsed = text.length > 0 ? (JSON.parse(text) as Record<string, unknown>) : undefined;
      } catch {
        // Not JSON (a gateway's error page): the status code speaks.
      }
      if (res.statusCode < 400) return { statusCode: res.statusCode, headers: res.headers, body: parsed };
      const error = (parsed?.["error"] ?? {}) as { code?: string; message?: string };
      const code = error.code ?? String(res.statusCode);
      const message = error.message ?? text.slice(0, 300);
      const retryAfter = retryAfterMs(res.headers, clock.now());
      if ((res.statusCode === 429 || res.statusCode === 503) && attempt < maxRetries) {
        const wait = retryAfter ?? this.#o.defaultRetryAfterMs ?? DEFAULT_COMPUTE_CLIENT_OPTIONS.defaultRetryAfterMs;
        observer?.throttled(op, wait);
        // ARM's own subscription limit stops every write; Compute's (OperationNotAllowed) only this VM/VMSS's.
        if (code === "SubscriptionRequestsThrottled") this.#o.writeBudget.block(undefined, wait);
        else if (budgetKey) this.#o.writeBudget.block(budgetKey, wait);
        this.#o.logger.warn({ operation: op, statusCode: res.statusCode, armCode: code, retryAfterMs: wait }, "ARM throttled the request; waiting for Retry-After");
        await clock.sleep(wait, signal);
        if (signal?.aborted) throw signal.reason ?? new Error("aborted");
        if (budgetKey) await this.#o.writeBudget.acquire(budgetKey, signal);
        continue;
      }
      throw new ArmRequestError(`${op}: ARM answered ${res.statusCode} ${code}: ${message}`, {
        statusCode: res.statusCode,
        armCode: code,
        armMessage: message,
        operation: op,
        ...(retryAfter !== undefined && { retryAfterMs: retryAfter }),
        failedIdentityIds: failedIdentityIds(code, message),
      });
    }
  }
}

function header(headers: ArmResponse["headers"], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function parseState(body: Record<string, unknown> | undefined): ComputeIdentityState {
  const identity = (body?.["identity"] ?? {}) as { type?: string; userAssignedIdentities?: Record<string, { clientId?: string | null; principalId?: string | null } | null> };
  const userAssigned = new Map<string, ObservedIdentity>();
  for (const [resourceId, value] of Object.entries(identity.userAssignedIdentities ?? {})) {
    userAssigned.set(canonicalResourceId(resourceId), { resourceId, clientId: value?.clientId ?? null, principalId: value?.principalId ?? null });
  }
  const properties = (body?.["properties"] ?? {}) as { provisioningState?: string };
  return {
    exists: true,
    type: identity.type ?? "None",
    userAssigned,
    ...(properties.provisioningState !== undefined && { provisioningState: properties.provisioningState }),
  };
}
