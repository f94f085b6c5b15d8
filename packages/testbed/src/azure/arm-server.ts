import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Clock } from "../clock";
import { authenticateArmRequest } from "./arm-auth";
import { armError, resourceGroupNotFound, resourceNotFound } from "./arm-error";
import { parseArmRoute, type ArmRoute } from "./arm-route";
import { ArmThrottle } from "./arm-throttle";
import type { ComputeResource } from "./compute-resource";
import type { ComputeStore, ResourceGroup } from "./compute-store";
import { BodyTooLargeError, HttpError, listen, readBody, realSleep, requestUrl, sendJson, type ListenOptions, type RunningServer, type SleepFn, type TlsMaterial } from "./http";
import type { IdentityRegistry, UserAssignedIdentity } from "./identity-registry";
import type { KeyVaultServer } from "./keyvault-server";
import { applyAccessPolicies } from "./vault-access-policies";
import { OperationTracker, type OperationError } from "./lro";
import type { TokenBucketOptions } from "./throttle";
import type { TokenIssuer } from "./token-issuer";

export const DEFAULT_ARM_SERVER_OPTIONS = {
  /** How long a VM/VMSS PATCH stays InProgress (real VMSS updates take tens of seconds). */
  operationDurationMs: 2_000,
  /** Extra time after the operation before IMDS on the nodes knows the identity. */
  propagationDelayMs: 1_000,
  /** Real-time delay before answering each request. */
  latencyMs: 0,
  /** Retry-After (seconds) on the polling URL while InProgress. */
  pollRetryAfterSeconds: 1,
  maxBodyBytes: 4 * 1024 * 1024,
  /** Compute limits (2024 model): VMSS/VM update per resource refills 4/min with a burst of 12. */
  resourceWriteLimit: { capacity: 12, refillPerMinute: 4 } as TokenBucketOptions,
  /** Compute, VM/VMSS updates per subscription: burst 1,500, 500/min. */
  computeSubscriptionWriteLimit: { capacity: 1_500, refillPerMinute: 500 } as TokenBucketOptions,
  /** ARM's documented token buckets (2024), per subscription and principal: writes 200, refilled 10/s. */
  subscriptionWriteLimit: { capacity: 200, refillPerMinute: 600 } as TokenBucketOptions,
  /** Reads: 250, refilled 25/s. */
  subscriptionReadLimit: { capacity: 250, refillPerMinute: 1_500 } as TokenBucketOptions,
  /** Deletes: 200, refilled 10/s. */
  subscriptionDeleteLimit: { capacity: 200, refillPerMinute: 600 } as TokenBucketOptions,
  /**
   * A VM/VMSS PATCH while its previous operation is still running: "conflict" answers 409 Conflict (what Compute
   * answers concurrent writes to one resource), "preempt" accepts it and ends the running operation Canceled
   * with OperationPreempted, "accept" runs both (the lenient behaviour).
   */
  concurrentWrites: "conflict" as ConcurrentWriteMode,
  requireAuth: true,
} as const;

export interface ArmServerOptions extends ListenOptions {
  tls: TlsMaterial;
  clock: Clock;
  registry: IdentityRegistry;
  compute: ComputeStore;
  tokenIssuer: TokenIssuer;
  operationDurationMs?: number;
  propagationDelayMs?: number;
  latencyMs?: number;
  pollRetryAfterSeconds?: number;
  maxBodyBytes?: number;
  resourceWriteLimit?: TokenBucketOptions;
  subscriptionWriteLimit?: TokenBucketOptions;
  subscriptionReadLimit?: TokenBucketOptions;
  subscriptionDeleteLimit?: TokenBucketOptions;
  computeSubscriptionWriteLimit?: TokenBucketOptions;
  concurrentWrites?: ConcurrentWriteMode;
  requireAuth?: boolean;
  sleep?: SleepFn;
  /** Finds a Key Vault by name for access-policy updates (`…/Microsoft.KeyVault/vaults/{name}/accessPolicies/{kind}`). */
  findKeyVault?: (name: string) => KeyVaultServer | undefined;
}

/** One request ARM answered, for tests to inspect. */
export interface ArmCall {
  method: string;
  path: string;
  query: string;
  status: number;
  atMs: number;
  /** Parsed JSON body of writes (undefined for reads or unparsable bodies). */
  body?: unknown;
}

export type ConcurrentWriteMode = "conflict" | "preempt" | "accept";

const CONCURRENT_WRITE_MODES: readonly ConcurrentWriteMode[] = ["conflict", "preempt", "accept"];

/** Compute's answer to a write while another operation on the same resource runs (onefuzz and cloud-provider-azure match this text). */
export const CONCURRENT_REQUEST_CONFLICT_MESSAGE =
  "The request failed due to conflict with a concurrent request. To resolve it, please refer to https://aka.ms/activitylog to get more details on the conflicting requests.";

const API_VERSION_PATTERN = /^\d{4}-\d{2}-\d{2}(-preview)?$/;

/**
 * Azure Resource Manager for what podidentity touches: subscriptions, VM/VMSS GET and identity
 * PATCH (with LRO, throttling and Azure's identity semantics) and user-assigned identities.
 */
export class ArmServer {
  readonly calls: ArmCall[] = [];
  readonly operations: OperationTracker;
  latencyMs: number;
  operationDurationMs: number;
  propagationDelayMs: number;
  /** What a PATCH to a VM/VMSS whose previous operation still runs gets; settable while running. */
  concurrentWrites: ConcurrentWriteMode;
  readonly #options: ArmServerOptions;
  readonly #clock: Clock;
  readonly #sleep: SleepFn;
  readonly #throttle: ArmThrottle;
  #failNext: OperationError[] = [];
  #server: RunningServer | undefined;

  constructor(options: ArmServerOptions) {
    this.#options = options;
    this.#clock = options.clock;
    this.#sleep = options.sleep ?? realSleep;
    this.operations = new OperationTracker(options.clock);
    this.#throttle = new ArmThrottle(options.clock, {
      resourceWriteLimit: options.resourceWriteLimit ?? DEFAULT_ARM_SERVER_OPTIONS.resourceWriteLimit,
      computeSubscriptionWriteLimit: options.computeSubscriptionWriteLimit ?? DEFAULT_ARM_SERVER_OPTIONS.computeSubscriptionWriteLimit,
      subscriptionWriteLimit: options.subscriptionWriteLimit ?? DEFAULT_ARM_SERVER_OPTIONS.subscriptionWriteLimit,
      subscriptionReadLimit: options.subscriptionReadLimit ?? DEFAULT_ARM_SERVER_OPTIONS.subscriptionReadLimit,
      subscriptionDeleteLimit: options.subscriptionDeleteLimit ?? DEFAULT_ARM_SERVER_OPTIONS.subscriptionDeleteLimit,
    });
    this.concurrentWrites = options.concurrentWrites ?? DEFAULT_ARM_SERVER_OPTIONS.concurrentWrites;
    if (!CONCURRENT_WRITE_MODES.includes(this.concurrentWrites)) {
      throw new RangeError(`ArmServer: concurrentWrites must be one of ${CONCURRENT_WRITE_MODES.join(", ")}, got ${String(this.concurrentWrites)}`);
    }
    this.latencyMs = options.latencyMs ?? DEFAULT_ARM_SERVER_OPTIONS.latencyMs;
    this.operationDurationMs = options.operationDurationMs ?? DEFAULT_ARM_SERVER_OPTIONS.operationDurationMs;
    this.propagationDelayMs = options.propagationDelayMs ?? DEFAULT_ARM_SERVER_OPTIONS.propagationDelayMs;
    for (const [name, value] of Object.entries({ latencyMs: this.latencyMs, operationDurationMs: this.operationDurationMs, propagationDelayMs: this.propagationDelayMs })) {
      if (!(value >= 0)) throw new RangeError(`ArmServer: ${name} must be >= 0, got ${value}`);
    }
  }

  get url(): string {
    if (!this.#server) throw new Error("ArmServer: not started; call start() first");
    return this.#server.url;
  }

  async start(): Promise<this> {
    this.#server = await listen(
      (req, res) => this.#handle(req, res),
      (error, req, res) => this.#fail(error, req, res),
      { host: this.#options.host, port: this.#options.port, tls: this.#options.tls },
    );
    return this;
  }

  async close(): Promise<void> {
    await this.#server?.close();
    this.#server = undefined;
  }

  /** Makes the next `count` VM/VMSS operations end Failed with `error` (the PATCH itself is accepted and not applied). */
  failNextOperations(error: OperationError, count = 1): void {
    for (let i = 0; i < count; i++) this.#failNext.push(error);
  }

  callsTo(method: string, pathPattern: RegExp): ArmCall[] {
    return this.calls.filter((c) => c.method === method && pathPattern.test(c.path));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = requestUrl(req);
    const method = req.method ?? "GET";
    const call: ArmCall = { method, path: url.pathname, query: url.search, status: 0, atMs: this.#clock.now() };
    this.calls.push(call);
    res.on("finish", () => (call.status = res.statusCode));
    // On every answer, errors included, as ARM: its own request ID, the caller's correlation ID (or a new one),
    // and the caller's client request ID echoed.
    const requestId = randomUUID();
    const correlationId = singleHeader(req, "x-ms-correlation-request-id") ?? requestId;
    res.setHeader("x-ms-request-id", requestId);
    res.setHeader("x-ms-correlation-request-id", correlationId);
    res.setHeader("x-ms-routing-request-id", `EASTUS:${new Date(call.atMs).toISOString().replace(/[-:]|\.\d+/g, "")}:${requestId}`);
    const clientRequestId = singleHeader(req, "x-ms-client-request-id");
    if (clientRequestId !== undefined) res.setHeader("x-ms-client-request-id", clientRequestId);
    await this.#sleep(this.latencyMs);

    const body = method === "PATCH" || method === "PUT" || method === "POST" ? await this.#readJson(req) : undefined;
    call.body = body;
    let actor = "anonymous";
    if (this.#options.requireAuth ?? DEFAULT_ARM_SERVER_OPTIONS.requireAuth) {
      ({ objectId: actor } = await authenticateArmRequest(req, this.#options.tokenIssuer, this.#options.registry.tenantId));
    }

    const apiVersion = url.searchParams.get("api-version");
    if (!apiVersion) {
      throw armError(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.");
    }
    if (!API_VERSION_PATTERN.test(apiVersion)) {
      throw armError(400, "InvalidApiVersionParameter", `The api-version '${apiVersion}' is invalid. The supported versions are '2019-12-01,2020-06-01,2021-07-01,2022-03-01,2022-11-01,2023-03-01,2023-09-01,2024-03-01,2024-07-01'.`);
    }
    const route = parseArmRoute(url.pathname);
    if (!route) throw armError(404, "InvalidResourceType", `The resource type could not be found for path '${url.pathname}' and api version '${apiVersion}'.`);

    const subscriptionId = "subscriptionId" in route ? route.subscriptionId : undefined;
    if (subscriptionId !== undefined && !this.#options.compute.getSubscription(subscriptionId)) {
      throw armError(404, "SubscriptionNotFound", `The subscription '${subscriptionId}' could not be found.`);
    }
    for (const [name, value] of Object.entries(this.#throttle.check(method, route, subscriptionId, actor))) res.setHeader(name, value);

    switch (route.kind) {
      case "subscriptions":
        return this.#subscriptions(method, res);
      case "subscription":
        return this.#subscription(method, route.subscriptionId, res);
      case "resourceGroups":
        if (method !== "GET") throw methodNotAllowed(method);
        sendJson(res, 200, { value: this.#options.compute.listResourceGroups(route.subscriptionId).map(resourceGroupJson) });
        return;
      case "resourceGroup":
        return this.#resourceGroup(method, route, res);
      case "computeList":
        return this.#computeList(method, route, res);
      case "computeChild":
        return this.#computeChild(method, route, res);
      case "compute":
        return this.#compute(req, method, route, body, apiVersion, res);
      case "operation":
        return this.#operation(method, route, res);
      case "identity":
        return this.#identity(method, route, res);
      case "accessPolicies":
        return this.#accessPolicies(method, route, body, res);
    }
  }

  async #readJson(req: IncomingMessage): Promise<unknown> {
    let raw: Buffer;
    try {
      raw = await readBody(req, this.#options.maxBodyBytes ?? DEFAULT_ARM_SERVER_OPTIONS.maxBodyBytes);
    } catch (error) {
      if (error instanceof BodyTooLargeError) {
        throw armError(413, "RequestEntityTooLarge", `The request content size exceeds the maximum allowed size of ${error.limitBytes} bytes.`);
      }
      throw error;
    }
    if (raw.length === 0) return undefined;
    try {
      return JSON.parse(raw.toString("utf8"));
    } catch (error) {
      throw armError(400, "InvalidRequestContent", `The request content was invalid and could not be deserialized: '${(error as Error).message}'.`);
    }
  }

  #subscriptions(method: string, res: ServerResponse): void {
    if (method !== "GET") throw methodNotAllowed(method);
    const value = this.#options.compute.listSubscriptions().map(subscriptionJson);
    sendJson(res, 200, { value, count: { type: "Total", value: value.length } });
  }

  #subscription(method: string, subscriptionId: string, res: ServerResponse): void {
    if (method !== "GET") throw methodNotAllowed(method);
    sendJson(res, 200, subscriptionJson(this.#options.compute.getSubscription(subscriptionId)!));
  }

  #compute(req: IncomingMessage, method: string, route: Extract<ArmRoute, { kind: "compute" }>, body: unknown, apiVersion: string, res: ServerResponse): void {
    const { registry } = this.#options;
    const resource = this.#findCompute(route);
    if (method === "GET") {
      sendJson(res, 200, this.#computeJson(resource));
      return;
    }
    if (method !== "PATCH") throw methodNotAllowed(method);
    if (body === null || typeof body !== "object" || Array.isArray(body)) {
      throw armError(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized: 'Expected a JSON object.'.");
    }
    const identity = (body as Record<string, unknown>)["identity"];
    const now = this.#clock.now();
    const busy = now < resource.busyUntilMs;
    if (busy && this.concurrentWrites === "conflict") throw armError(409, "Conflict", CONCURRENT_REQUEST_CONFLICT_MESSAGE);
    const failure = this.#failNext.shift();
    const operation = this.operations.start({
      subscriptionId: resource.subscriptionId,
      location: resource.location,
      resourceId: resource.id,
      durationMs: this.operationDurationMs,
      error: failure,
    });
    let notFound: string[] = [];
    if (identity !== undefined && !failure) {
      ({ notFound } = resource.applyIdentityPatch(identity, registry, { effectiveAtMs: operation.endMs + this.propagationDelayMs }));
    }
    // Refused before any change: the VM/VMSS does not become busy.
    if (notFound.length > 0) throw resource.notFoundError(notFound);
    if (busy && this.concurrentWrites === "preempt") {
      // The newer operation wins: the running one ends Canceled, and what it was rolling out lands with this one.
      this.operations.preemptRunning(resource.id, operation.id);
      resource.deferPending(now, operation.endMs + this.propagationDelayMs);
      resource.busyUntilMs = operation.endMs;
    }
    resource.busyUntilMs = Math.max(resource.busyUntilMs, operation.endMs);
    const host = req.headers.host ?? `127.0.0.1:${this.#server?.port ?? 443}`;
    const asyncUrl = `https://${host}/subscriptions/${resource.subscriptionId}/providers/Microsoft.Compute/locations/${resource.location}/operations/${operation.id}?api-version=${apiVersion}`;
    sendJson(res, 200, this.#computeJson(resource, now), {
      "azure-asyncoperation": asyncUrl,
      "azure-asyncnotification": "Enabled",
    });
  }

  #resourceGroup(method: string, route: Extract<ArmRoute, { kind: "resourceGroup" }>, res: ServerResponse): void {
    if (method !== "GET") throw methodNotAllowed(method);
    const group = this.#options.compute.getResourceGroup(route.subscriptionId, route.resourceGroup);
    if (!group) throw resourceGroupNotFound(route.resourceGroup);
    sendJson(res, 200, resourceGroupJson(group));
  }

  #computeList(method: string, route: Extract<ArmRoute, { kind: "computeList" }>, res: ServerResponse): void {
    if (method !== "GET") throw methodNotAllowed(method);
    this.#requireResourceGroup(route);
    sendJson(res, 200, { value: this.#options.compute.listInResourceGroup(route.computeKind, route.subscriptionId, route.resourceGroup).map((r) => this.#computeJson(r)) });
  }

  /** Instance views, and a scale set's instances (`…/virtualMachines[/{id}[/instanceView]]`). */
  #computeChild(method: string, route: Extract<ArmRoute, { kind: "computeChild" }>, res: ServerResponse): void {
    if (method !== "GET") throw methodNotAllowed(method);
    const resource = this.#findCompute(route);
    const now = this.#clock.now();
    const provisioning = now < resource.busyUntilMs ? "updating" : "succeeded";
    const status = (code: string, displayStatus: string): Record<string, unknown> => ({ code, level: "Info", displayStatus, time: new Date(now).toISOString() });
    const provisioningStatus = status(`ProvisioningState/${provisioning}`, provisioning === "updating" ? "Updating" : "Provisioning succeeded");
    if (route.instanceId !== undefined && !resource.instanceIds.includes(route.instanceId)) {
      throw resourceNotFound(`Microsoft.Compute/virtualMachineScaleSets/${route.name}/virtualMachines/${route.instanceId}`, route.resourceGroup);
    }
    if (route.child === "instanceView") {
      if (resource.kind === "virtualMachineScaleSets" && route.instanceId === undefined) {
        const n = resource.instanceIds.length;
        sendJson(res, 200, {
          virtualMachine: { statusesSummary: n > 0 ? [{ code: `ProvisioningState/${provisioning}`, count: n }] : [] },
          statuses: [provisioningStatus],
        });
        return;
      }
      const computerName = route.instanceId === undefined ? resource.name : `${resource.name}${route.instanceId.padStart(6, "0")}`;
      sendJson(res, 200, { computerName, osName: "ubuntu", osVersion: "22.04", statuses: [provisioningStatus, status("PowerState/running", "VM running")] });
      return;
    }
    const instances = route.instanceId === undefined ? resource.instanceIds : [route.instanceId];
    const json = instances.map((id) => ({
      name: `${resource.name}_${id}`,
      id: `${resource.id}/virtualMachines/${id}`,
      type: "Microsoft.Compute/virtualMachineScaleSets/virtualMachines",
      location: resource.location,
      instanceId: id,
      sku: { name: "Standard_DS2_v2", tier: "Standard" },
      properties: {
        latestModelApplied: true,
        vmId: `${resource.vmId.slice(0, -4)}${id.padStart(4, "0").slice(-4)}`,
        provisioningState: provisioning === "updating" ? "Updating" : "Succeeded",
        osProfile: { computerName: `${resource.name}${id.padStart(6, "0")}` },
      },
    }));
    sendJson(res, 200, route.instanceId === undefined ? { value: json } : json[0]);
  }

  #findCompute(route: { subscriptionId: string; resourceGroup: string; computeKind: ComputeResource["kind"]; name: string }): ComputeResource {
    this.#requireResourceGroup(route);
    const resource = this.#options.compute.get(route.computeKind, route.subscriptionId, route.resourceGroup, route.name);
    if (!resource) throw resourceNotFound(`Microsoft.Compute/${route.computeKind}/${route.name}`, route.resourceGroup);
    return resource;
  }

  #requireResourceGroup(route: { subscriptionId: string; resourceGroup: string }): void {
    if (!this.#options.compute.hasResourceGroup(route.subscriptionId, route.resourceGroup)) throw resourceGroupNotFound(route.resourceGroup);
  }

  #operation(method: string, route: Extract<ArmRoute, { kind: "operation" }>, res: ServerResponse): void {
    if (method !== "GET") throw methodNotAllowed(method);
    const operation = this.operations.get(route.operationId);
    if (!operation || operation.subscriptionId.toLowerCase() !== route.subscriptionId.toLowerCase()) {
      throw armError(404, "NotFound", `The operation '${route.operationId}' could not be found.`);
    }
    const json = this.operations.toJson(operation);
    const headers: Record<string, string> = {};
    if (json["status"] === "InProgress") {
      headers["retry-after"] = String(this.#options.pollRetryAfterSeconds ?? DEFAULT_ARM_SERVER_OPTIONS.pollRetryAfterSeconds);
    }
    sendJson(res, 200, json, headers);
  }

  #identity(method: string, route: Extract<ArmRoute, { kind: "identity" }>, res: ServerResponse): void {
    const { registry } = this.#options;
    const id = `/subscriptions/${route.subscriptionId}/resourcegroups/${route.resourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${route.name}`;
    if (method === "GET") {
      const identity = registry.getUserAssignedIdentity(id);
      if (!identity) throw resourceNotFound(`Microsoft.ManagedIdentity/userAssignedIdentities/${route.name}`, route.resourceGroup);
      sendJson(res, 200, identityJson(identity));
      return;
    }
    if (method === "PUT") {
      this.#requireResourceGroup(route);
      let result: ReturnType<IdentityRegistry["createUserAssignedIdentity"]>;
      try {
        result = registry.createUserAssignedIdentity({ subscriptionId: route.subscriptionId, resourceGroup: route.resourceGroup, name: route.name });
      } catch (error) {
        throw armError(400, "InvalidResourceName", (error as Error).message);
      }
      sendJson(res, result.created ? 201 : 200, identityJson(result.identity));
      return;
    }
    if (method === "DELETE") {
      const deleted = registry.deleteUserAssignedIdentity(id);
      res.writeHead(deleted ? 200 : 204).end();
      return;
    }
    throw methodNotAllowed(method);
  }

  #accessPolicies(method: string, route: Extract<ArmRoute, { kind: "accessPolicies" }>, body: unknown, res: ServerResponse): void {
    if (method !== "PUT") throw methodNotAllowed(method);
    this.#requireResourceGroup(route);
    const vault = this.#options.findKeyVault?.(route.vault);
    if (!vault) throw resourceNotFound(`Microsoft.KeyVault/vaults/${route.vault}`, route.resourceGroup);
    const result = applyAccessPolicies(vault, route.operation, this.#options.registry.tenantId, body);
    const id = `/subscriptions/${route.subscriptionId}/resourceGroups/${route.resourceGroup}/providers/Microsoft.KeyVault/vaults/${route.vault}/accessPolicies/${route.operation}`;
    sendJson(res, 200, { id, name: route.operation, ...result });
  }

  #computeJson(resource: ComputeResource, now = this.#clock.now()): Record<string, unknown> {
    const provisioningState = now < resource.busyUntilMs ? "Updating" : "Succeeded";
    const json: Record<string, unknown> = {
      name: resource.name,
      id: resource.id,
      type: `Microsoft.Compute/${resource.kind}`,
      location: resource.location,
    };
    const identity = resource.identityJson(this.#options.registry);
    if (identity) json["identity"] = identity;
    json["properties"] =
      resource.kind === "virtualMachineScaleSets"
        ? { provisioningState, uniqueId: resource.vmId, orchestrationMode: "Uniform", upgradePolicy: { mode: "Manual" } }
        : { provisioningState, vmId: resource.vmId, hardwareProfile: { vmSize: "Standard_DS2_v2" } };
    if (resource.kind === "virtualMachineScaleSets") json["sku"] = { name: "Standard_DS2_v2", tier: "Standard", capacity: resource.instanceIds.length };
    return json;
  }

  #fail(error: unknown, _req: IncomingMessage, res: ServerResponse): void {
    if (error instanceof HttpError) {
      sendJson(res, error.statusCode, error.body, error.headers);
      return;
    }
    // A bug in the emulator must still look like Azure to the client, not drop the connection.
    const internal = armError(500, "InternalServerError", `The server encountered an internal error: ${(error as Error)?.message ?? String(error)}`);
    sendJson(res, internal.statusCode, internal.body);
  }
}

function methodNotAllowed(method: string): HttpError {
  return armError(405, "UnsupportedHttpMethod", `The requested resource does not support http method '${method}'.`);
}

function singleHeader(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  const first = Array.isArray(value) ? value[0] : value;
  // Echoed back: bounded and printable only, so a caller cannot inject header text.
  return first !== undefined && /^[\x21-\x7e]{1,200}$/.test(first) ? first : undefined;
}

function resourceGroupJson(group: ResourceGroup): Record<string, unknown> {
  return {
    id: `/subscriptions/${group.subscriptionId}/resourceGroups/${group.name}`,
    name: group.name,
    type: "Microsoft.Resources/resourceGroups",
    location: group.location,
    properties: { provisioningState: "Succeeded" },
  };
}

function subscriptionJson(s: { subscriptionId: string; displayName: string; tenantId: string }): Record<string, unknown> {
  return {
    id: `/subscriptions/${s.subscriptionId}`,
    authorizationSource: "RoleBased",
    managedByTenants: [],
    subscriptionId: s.subscriptionId,
    tenantId: s.tenantId,
    displayName: s.displayName,
    state: "Enabled",
    subscriptionPolicies: { locationPlacementId: "Public_2014-09-01", quotaId: "PayAsYouGo_2014-09-01", spendingLimit: "Off" },
  };
}

function identityJson(identity: UserAssignedIdentity): Record<string, unknown> {
  return {
    id: identity.id,
    name: identity.name,
    type: "Microsoft.ManagedIdentity/userAssignedIdentities",
    location: identity.location,
    tags: {},
    properties: { tenantId: identity.tenantId, principalId: identity.principalId, clientId: identity.clientId },
  };
}
