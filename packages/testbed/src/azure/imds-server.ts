import type { IncomingMessage, ServerResponse } from "node:http";
import type { Clock } from "../clock";
import { isLive, type ComputeResource } from "./compute-resource";
import type { ComputeStore } from "./compute-store";
import { HttpError, listen, realSleep, requestUrl, sendJson, type ListenOptions, type RunningServer, type SleepFn } from "./http";
import type { IdentityRegistry } from "./identity-registry";
import { KnownResources } from "./known-resources";
import { TokenBucket } from "./throttle";
import type { TokenIssuer } from "./token-issuer";

export const DEFAULT_IMDS_SERVER_OPTIONS = {
  /** Managed Identity category limits per VM: 20 requests/s and 5 concurrent. */
  requestsPerSecond: 20,
  maxConcurrent: 5,
  latencyMs: 0,
  /** IMDS hands out its cached token until this close to expiry. */
  cacheRefreshWindowMs: 5 * 60 * 1000,
} as const;

export interface ImdsServerOptions extends ListenOptions {
  /** The node's name (the VM name, or the VMSS instance's computer name). */
  nodeName: string;
  /** The VM or VMSS this node belongs to. */
  resourceId: string;
  clock: Clock;
  registry: IdentityRegistry;
  compute: ComputeStore;
  tokenIssuer: TokenIssuer;
  knownResources?: KnownResources;
  requestsPerSecond?: number;
  maxConcurrent?: number;
  latencyMs?: number;
  sleep?: SleepFn;
}

export interface ImdsCounters {
  requests: number;
  tokensIssued: number;
  throttled: number;
  byStatus: Record<number, number>;
}

interface CachedToken {
  token: string;
  expiresOnMs: number;
  notBeforeMs: number;
}

interface SelectedIdentity {
  clientId: string;
  principalId: string;
  tenantId: string;
  /** `xms_mirid`: the user-assigned identity, or the VM/VMSS for the system-assigned one. */
  resourceId: string | undefined;
}

const TOKEN_PATH = "/metadata/identity/oauth2/token";
const INSTANCE_API_VERSIONS = ["2017-08-01", "2018-10-01", "2019-06-01", "2020-09-01", "2021-02-01", "2021-12-13", "2023-07-01"];

/**
 * The Instance Metadata Service of one node: the managed-identity token endpoint as Azure's
 * (selection rules, string-valued fields, limits) and compute metadata. Tokens are issued only
 * for identities the node's VM/VMSS holds through ARM, once the assignment has propagated.
 */
export class ImdsServer {
  readonly nodeName: string;
  readonly counters: ImdsCounters = { requests: 0, tokensIssued: 0, throttled: 0, byStatus: {} };
  latencyMs: number;
  readonly #options: ImdsServerOptions;
  readonly #clock: Clock;
  readonly #sleep: SleepFn;
  readonly #rate: TokenBucket;
  readonly #maxConcurrent: number;
  readonly #cache = new Map<string, CachedToken>();
  readonly #resources: KnownResources;
  #inFlight = 0;
  #updatingUntilMs = 0;
  #server: RunningServer | undefined;

  constructor(options: ImdsServerOptions) {
    this.#options = options;
    this.nodeName = options.nodeName;
    this.#clock = options.clock;
    this.#sleep = options.sleep ?? realSleep;
    this.latencyMs = options.latencyMs ?? DEFAULT_IMDS_SERVER_OPTIONS.latencyMs;
    const rps = options.requestsPerSecond ?? DEFAULT_IMDS_SERVER_OPTIONS.requestsPerSecond;
    if (!(rps > 0)) throw new RangeError(`ImdsServer: requestsPerSecond must be > 0, got ${rps}`);
    this.#rate = new TokenBucket({ capacity: rps, refillPerMinute: rps * 60 }, options.clock);
    this.#resources = options.knownResources ?? new KnownResources();
    this.#maxConcurrent = options.maxConcurrent ?? DEFAULT_IMDS_SERVER_OPTIONS.maxConcurrent;
    if (!(this.#maxConcurrent >= 1)) throw new RangeError(`ImdsServer: maxConcurrent must be >= 1, got ${this.#maxConcurrent}`);
  }

  get url(): string {
    if (!this.#server) throw new Error("ImdsServer: not started; call start() first");
    return this.#server.url;
  }

  async start(): Promise<this> {
    this.#server = await listen(
      (req, res) => this.#handle(req, res),
      (error, _req, res) => {
        const e = error instanceof HttpError ? error : new HttpError(500, { error: "unknown", error_description: String((error as Error)?.message ?? error) });
        this.#count(e.statusCode);
        sendJson(res, e.statusCode, e.body, e.headers);
      },
      { host: this.#options.host, port: this.#options.port },
    );
    return this;
  }

  async close(): Promise<void> {
    await this.#server?.close();
    this.#server = undefined;
  }

  /** Answers 410 to token requests for `durationMs` of clock time, as IMDS does while it updates. */
  setUpdating(durationMs: number): void {
    this.#updatingUntilMs = this.#clock.now() + durationMs;
  }

  #count(status: number): void {
    this.counters.byStatus[status] = (this.counters.byStatus[status] ?? 0) + 1;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.counters.requests++;
    const url = requestUrl(req);
    // MSAL sends the token path with a trailing slash; IMDS accepts both.
    const isToken = url.pathname.toLowerCase().replace(/\/$/, "") === TOKEN_PATH;
    if (isToken) {
      // Throttling is decided on arrival, before any work, as the Managed Identity category does.
      if (this.#inFlight >= this.#maxConcurrent || !this.#rate.take().ok) {
        this.counters.throttled++;
        throw new HttpError(429, { error: "too_many_requests", error_description: "Too many requests. The rate limit for the Managed Identity category is 20 requests per second and 5 concurrent requests." });
      }
    }
    this.#inFlight++;
    try {
      await this.#sleep(this.latencyMs);
      if (isToken) await this.#token(req, url, res);
      else if (url.pathname.toLowerCase().startsWith("/metadata/instance")) this.#instance(req, url, res);
      else throw new HttpError(404, { error: "Not found" });
    } finally {
      this.#inFlight--;
    }
  }

  async #token(req: IncomingMessage, url: URL, res: ServerResponse): Promise<void> {
    if (req.method !== "GET") throw new HttpError(405, { error: "invalid_request", error_description: "The requested method is not supported; use GET" });
    requireMetadataHeader(req);
    if (req.headers["x-forwarded-for"] !== undefined) {
      throw new HttpError(400, { error: "invalid_request", error_description: "Requests with an X-Forwarded-For header are not allowed" });
    }
    if (this.#clock.now() < this.#updatingUntilMs) {
      throw new HttpError(410, { error: "service_unavailable", error_description: "IMDS is being updated and will be available within 70 seconds" });
    }
    const params = url.searchParams;
    if (!params.get("api-version")) throw new HttpError(400, { error: "invalid_request", error_description: "Required query variable 'api-version' is missing" });
    const resource = params.get("resource");
    if (!resource) throw new HttpError(400, { error: "invalid_request", error_description: "Required query variable 'resource' is missing" });

    const identity = this.#select(params);
    if (!this.#resources.has(resource)) {
      throw new HttpError(400, {
        error: "invalid_resource",
        error_description: `AADSTS500011: The resource principal named ${resource} was not found in the tenant named ${this.#options.registry.tenantId}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`,
      });
    }
    const cacheKey = `${identity.clientId}|${resource}`;
    const now = this.#clock.now();
    let cached = this.#cache.get(cacheKey);
    if (!cached || cached.expiresOnMs - now <= DEFAULT_IMDS_SERVER_OPTIONS.cacheRefreshWindowMs) {
      const issued = await this.#options.tokenIssuer.issue({
        audience: resource,
        tenantId: identity.tenantId,
        objectId: identity.principalId,
        appId: identity.clientId,
        managedIdentityResourceId: identity.resourceId,
      });
      cached = { token: issued.token, expiresOnMs: issued.expiresOnMs, notBeforeMs: issued.notBeforeMs };
      this.#cache.set(cacheKey, cached);
    }
    this.counters.tokensIssued++;
    this.#count(200);
    const expiresIn = String(Math.max(0, Math.floor((cached.expiresOnMs - now) / 1000)));
    sendJson(res, 200, {
      access_token: cached.token,
      refresh_token: "",
      client_id: identity.clientId,
      expires_in: expiresIn,
      expires_on: String(Math.floor(cached.expiresOnMs / 1000)),
      ext_expires_in: expiresIn,
      not_before: String(Math.floor(cached.notBeforeMs / 1000)),
      resource,
      token_type: "Bearer",
    });
  }

  /** Azure's selection rules: one selector at most; none → system-assigned, else the only user-assigned. */
  #select(params: URLSearchParams): SelectedIdentity {
    const selectors = (["client_id", "object_id", "msi_res_id", "mi_res_id"] as const).filter((k) => params.get(k));
    if (selectors.length > 1) {
      throw new HttpError(400, { error: "invalid_request", error_description: "Only one of client_id, object_id or msi_res_id may be specified" });
    }
    const vm = this.#resource();
    const now = this.#clock.now();
    const { registry } = this.#options;
    const notFound = new HttpError(400, { error: "invalid_request", error_description: "Identity not found" });
    const users = vm ? [...vm.userAssigned.values()] : [];
    const system = vm?.systemAssigned;
    const selector = selectors[0];
    if (selector === undefined) {
      if (system) {
        if (now < system.effectiveAtMs) throw notFound;
        return { clientId: system.clientId, principalId: system.principalId, tenantId: system.tenantId, resourceId: vm?.id };
      }
      if (users.length > 1) {
        throw new HttpError(400, {
          error: "invalid_request",
          error_description: "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request",
        });
      }
      const only = users[0];
      if (!only || now < only.effectiveAtMs || !isLive(only, registry)) throw notFound;
      return { clientId: only.clientId, principalId: only.principalId, tenantId: registry.tenantId, resourceId: only.resourceId };
    }
    const wanted = params.get(selector)!.toLowerCase();
    if (system && (selector === "client_id" ? system.clientId : system.principalId).toLowerCase() === wanted && selector !== "msi_res_id" && selector !== "mi_res_id") {
      if (now < system.effectiveAtMs) throw notFound;
      return { clientId: system.clientId, principalId: system.principalId, tenantId: system.tenantId, resourceId: vm?.id };
    }
    const match = users.find((u) => {
      if (!isLive(u, registry)) return false;
      if (selector === "client_id") return u.clientId.toLowerCase() === wanted;
      if (selector === "object_id") return u.principalId.toLowerCase() === wanted;
      return u.resourceId.toLowerCase() === wanted;
    });
    if (!match || now < match.effectiveAtMs) throw notFound;
    return { clientId: match.clientId, principalId: match.principalId, tenantId: registry.tenantId, resourceId: match.resourceId };
  }

  #resource(): ComputeResource | undefined {
    return this.#options.compute.getById(this.#options.resourceId);
  }

  #instance(req: IncomingMessage, url: URL, res: ServerResponse): void {
    if (req.method !== "GET") throw new HttpError(405, { error: "Method not allowed" });
    requireMetadataHeader(req);
    const apiVersion = url.searchParams.get("api-version");
    if (!apiVersion || !INSTANCE_API_VERSIONS.includes(apiVersion)) {
      throw new HttpError(400, {
        error: "Bad request. api-version is invalid or was not specified in the request. For more information refer to aka.ms/azureimds",
        "newest-versions": INSTANCE_API_VERSIONS.slice(-3).reverse(),
      });
    }
    const vm = this.#resource();
    const compute = {
      azEnvironment: "AzurePublicCloud",
      location: vm?.location ?? "",
      name: this.nodeName,
      osType: "Linux",
      resourceGroupName: vm?.resourceGroup ?? "",
      resourceId: vm ? (vm.kind === "virtualMachines" ? vm.id : `${vm.id}/virtualMachines/0`) : "",
      subscriptionId: vm?.subscriptionId ?? "",
      tagsList: [],
      vmId: vm?.vmId ?? "",
      vmScaleSetName: vm?.kind === "virtualMachineScaleSets" ? vm.name : "",
      vmSize: "Standard_DS2_v2",
      zone: "",
    };
    const rest = url.pathname.toLowerCase().replace(/^\/metadata\/instance\/?/, "");
    this.#count(200);
    if (rest === "") sendJson(res, 200, { compute, network: { interface: [] } });
    else if (rest === "compute") sendJson(res, 200, compute);
    else throw new HttpError(404, { error: "Not found" });
  }
}

function requireMetadataHeader(req: IncomingMessage): void {
  if (String(req.headers["metadata"] ?? "").toLowerCase() !== "true") {
    throw new HttpError(400, { error: "bad_request_102", error_description: "Required metadata header not specified" });
  }
}
