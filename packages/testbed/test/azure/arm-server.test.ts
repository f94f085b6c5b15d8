import { SignJWT, generateKeyPair } from "jose";
import type { Agent } from "undici";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AzureCloud, ManualClock, type ArmServer, type ComputeResource } from "../../src/index";
import { armToken, caAgent, call, type JsonResponse } from "../helpers/azure-clients";

const API = "api-version=2022-03-01";

let clock: ManualClock;
let cloud: AzureCloud;
let arm: ArmServer;
let agent: Agent;
let token: string;
let vmss: ComputeResource;

beforeEach(async () => {
  clock = new ManualClock(Date.now());
  cloud = await AzureCloud.create({ clock });
  arm = await cloud.startArm({ operationDurationMs: 30_000, propagationDelayMs: 0 });
  agent = caAgent(cloud.ca.certPem);
  token = await armToken(cloud);
  vmss = cloud.addScaleSet("aks-nodepool1-vmss");
});

afterEach(async () => {
  await agent.close();
  await cloud.close();
});

function armCall(path: string, options: { method?: "GET" | "PATCH" | "PUT" | "DELETE" | "POST"; body?: unknown; raw?: string; token?: string | null } = {}): Promise<JsonResponse> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (options.token !== null) headers["authorization"] = `Bearer ${options.token ?? token}`;
  return call(`${arm.url}${path}`, {
    method: options.method ?? "GET",
    headers,
    body: options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body)),
    dispatcher: agent,
  });
}

const vmssPath = (): string => `${vmss.id}?${API}`;
const patchIdentity = (identity: unknown): Promise<JsonResponse> => armCall(vmssPath(), { method: "PATCH", body: { identity } });
const errorCode = (r: JsonResponse): unknown => (r.body as { error?: { code?: string } }).error?.code;
const errorMessage = (r: JsonResponse): string => String((r.body as { error?: { message?: string } }).error?.message);

// MIC's regex (aad-pod-identity pkg/cloudprovider) for the IDs named in a FailedIdentityOperation message.
const MIC_ID_PATTERN =
  /'(,?\/subscriptions\/[a-zA-Z0-9-_]+\/resourcegroups\/[a-zA-Z0-9-_]+\/providers\/Microsoft.ManagedIdentity\/userAssignedIdentities\/[a-zA-Z0-9-_]+)+'/i;

describe("ArmServer authentication", () => {
  it("lists subscriptions for az login with an emulator-issued management token", async () => {
    const r = await armCall("/subscriptions?api-version=2019-11-01", { token: await armToken(cloud, "https://management.core.windows.net/") });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ value: [{ id: `/subscriptions/${cloud.subscriptionId}`, subscriptionId: cloud.subscriptionId, tenantId: cloud.tenantId, state: "Enabled" }] });
    const one = await armCall(`/subscriptions/${cloud.subscriptionId}?api-version=2019-11-01`);
    expect(one.body).toMatchObject({ subscriptionId: cloud.subscriptionId, displayName: "testbed" });
  });

  it("refuses a missing Authorization header with ARM's challenge", async () => {
    const r = await armCall(`/subscriptions?${API}`, { token: null });
    expect(r.status).toBe(401);
    expect(errorCode(r)).toBe("AuthenticationFailed");
    expect(String(r.headers["www-authenticate"])).toContain(`authorization_uri="https://login.windows.net/${cloud.tenantId}"`);
  });

  it("refuses tokens for another audience, expired tokens and tokens not signed by the emulator", async () => {
    const vault = await armToken(cloud, "https://vault.azure.net");
    expect(errorCode(await armCall(`/subscriptions?${API}`, { token: vault }))).toBe("InvalidAuthenticationTokenAudience");

    const { privateKey } = await generateKeyPair("RS256");
    const now = Math.floor(clock.now() / 1000);
    const forged = await new SignJWT({ tid: cloud.tenantId, oid: "x", appid: "y" })
      .setProtectedHeader({ alg: "RS256", kid: cloud.tokenIssuer.kid })
      .setAudience("https://management.azure.com/")
      .setIssuer(`https://sts.windows.net/${cloud.tenantId}/`)
      .setIssuedAt(now)
      .setExpirationTime(now + 3600)
      .sign(privateKey);
    const r = await armCall(`/subscriptions?${API}`, { token: forged });
    expect(r.status).toBe(401);
    expect(errorCode(r)).toBe("InvalidAuthenticationToken");

    clock.advance(25 * 60 * 60 * 1000);
    expect(errorCode(await armCall(`/subscriptions?${API}`))).toBe("ExpiredAuthenticationToken");
  });
});

describe("ArmServer bad input", () => {
  it("answers each malformed request with ARM's error and status", async () => {
    const missing = await armCall(vmss.id);
    expect([missing.status, errorCode(missing)]).toEqual([400, "MissingApiVersionParameter"]);
    const badVersion = await armCall(`${vmss.id}?api-version=latest`);
    expect([badVersion.status, errorCode(badVersion)]).toEqual([400, "InvalidApiVersionParameter"]);
    const unknownRoute = await armCall(`/subscriptions/${cloud.subscriptionId}/resourceGroups/${cloud.resourceGroup}/providers/Microsoft.Network/loadBalancers/lb?${API}`);
    expect([unknownRoute.status, errorCode(unknownRoute)]).toEqual([404, "InvalidResourceType"]);
    const wrongMethod = await armCall(vmssPath(), { method: "POST", body: {} });
    expect([wrongMethod.status, errorCode(wrongMethod)]).toEqual([405, "UnsupportedHttpMethod"]);
    const badJson = await armCall(vmssPath(), { method: "PATCH", raw: "{not json" });
    expect([badJson.status, errorCode(badJson)]).toEqual([400, "InvalidRequestContent"]);
    const noType = await patchIdentity({ userAssignedIdentities: {} });
    expect([noType.status, errorCode(noType)]).toEqual([400, "InvalidRequestContent"]);
    expect(errorMessage(noType)).toContain("Required property 'type' not found");
    const badType = await patchIdentity({ type: "Everything" });
    expect([badType.status, errorCode(badType)]).toEqual([400, "InvalidParameter"]);
    const badId = await patchIdentity({ type: "UserAssigned", userAssignedIdentities: { "not-an-id": {} } });
    expect([badId.status, errorCode(badId)]).toEqual([400, "LinkedInvalidPropertyId"]);
    const huge = await armCall(vmssPath(), { method: "PATCH", raw: JSON.stringify({ tags: { x: "a".repeat(5 * 1024 * 1024) } }) });
    expect([huge.status, errorCode(huge)]).toEqual([413, "RequestEntityTooLarge"]);
  });

  it("answers 404 in ARM's words for unknown subscriptions, resource groups and resources", async () => {
    const sub = await armCall(`/subscriptions/00000000-0000-0000-0000-000000000000?${API}`);
    expect([sub.status, errorCode(sub)]).toEqual([404, "SubscriptionNotFound"]);
    const rg = await armCall(`/subscriptions/${cloud.subscriptionId}/resourceGroups/nope/providers/Microsoft.Compute/virtualMachineScaleSets/x?${API}`);
    expect([rg.status, errorCode(rg)]).toEqual([404, "ResourceGroupNotFound"]);
    const vm = await armCall(`/subscriptions/${cloud.subscriptionId}/resourceGroups/${cloud.resourceGroup}/providers/Microsoft.Compute/virtualMachines/nope?${API}`);
    expect([vm.status, errorCode(vm)]).toEqual([404, "ResourceNotFound"]);
  });
});

describe("ArmServer identity PATCH", () => {
  it("adds with {}, runs a long-running operation with Updating state, and polls to Succeeded", async () => {
    const id = cloud.createUserAssignedIdentity("id-a");
    const r = await patchIdentity({ type: "UserAssigned", userAssignedIdentities: { [id.id]: {} } });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ properties: { provisioningState: "Updating" }, identity: { type: "UserAssigned" } });
    const asyncUrl = String(r.headers["azure-asyncoperation"]);
    expect(asyncUrl).toMatch(new RegExp(`/subscriptions/${cloud.subscriptionId}/providers/Microsoft.Compute/locations/eastus/operations/[0-9a-f-]+\\?api-version=2022-03-01$`));

    const polling = await call(asyncUrl, { headers: { authorization: `Bearer ${token}` }, dispatcher: agent });
    expect(polling.body).toMatchObject({ status: "InProgress" });
    expect(polling.headers["retry-after"]).toBe("1");
    expect((await armCall(vmssPath())).body).toMatchObject({ properties: { provisioningState: "Updating" } });

    clock.advance(30_000);
    const done = await call(asyncUrl, { headers: { authorization: `Bearer ${token}` }, dispatcher: agent });
    expect(done.body).toMatchObject({ status: "Succeeded" });
    const after = await armCall(vmssPath());
    expect(after.body).toMatchObject({
      properties: { provisioningState: "Succeeded" },
      identity: { type: "UserAssigned", userAssignedIdentities: { [id.id]: { principalId: id.principalId, clientId: id.clientId } } },
    });
  });

  it("removes with null and follows Azure's type transitions", async () => {
    const a = cloud.createUserAssignedIdentity("id-a");
    const b = cloud.createUserAssignedIdentity("id-b");
    // Each PATCH after the previous operation ended (a PATCH while one runs gets 409: see "concurrent writes").
    const patchIdentity = async (identity: unknown): Promise<JsonResponse> => {
      const r = await armCall(vmssPath(), { method: "PATCH", body: { identity } });
      clock.advance(30_000);
      return r;
    };
    await patchIdentity({ type: "SystemAssigned, UserAssigned", userAssignedIdentities: { [a.id]: {}, [b.id]: {} } });
    const both = (await armCall(vmssPath())).body as { identity: { principalId: string; tenantId: string; userAssignedIdentities: object } };
    expect(Object.keys(both.identity.userAssignedIdentities)).toHaveLength(2);
    expect(both.identity.tenantId).toBe(cloud.tenantId);

    await patchIdentity({ type: "SystemAssigned, UserAssigned", userAssignedIdentities: { [a.id.toLowerCase()]: null } });
    const one = (await armCall(vmssPath())).body as typeof both;
    expect(Object.keys(one.identity.userAssignedIdentities)).toEqual([b.id]);

    // MIC: no user identities left and the system one stays → "SystemAssigned", same principal.
    await patchIdentity({ type: "SystemAssigned", userAssignedIdentities: { [b.id]: null } });
    const system = (await armCall(vmssPath())).body as typeof both;
    expect(system.identity).toEqual({ type: "SystemAssigned", principalId: both.identity.principalId, tenantId: cloud.tenantId });

    await patchIdentity({ type: "None" });
    expect((await armCall(vmssPath())).body).not.toHaveProperty("identity");

    const rejected = await patchIdentity({ type: "None", userAssignedIdentities: { [a.id]: {} } });
    expect([rejected.status, errorCode(rejected)]).toEqual([400, "InvalidParameter"]);
    const empty = await patchIdentity({ type: "UserAssigned", userAssignedIdentities: {} });
    expect([empty.status, errorCode(empty)]).toEqual([400, "InvalidParameter"]);
  });

  it("accepts 150 entries in one request and refuses 151 with Azure's message", async () => {
    const ids = Array.from({ length: 151 }, (_, i) => cloud.createUserAssignedIdentity(`id-${i}`).id);
    const over = await patchIdentity({ type: "UserAssigned", userAssignedIdentities: Object.fromEntries(ids.map((id) => [id, {}])) });
    expect(over.status).toBe(400);
    expect(errorCode(over)).toBe("FailedIdentityOperation");
    expect(errorMessage(over)).toContain("User Assigned Identities Number '151' Assign exceed limit '150' in one request.");
    expect(vmss.userAssigned.size).toBe(0);

    const ok = await patchIdentity({ type: "UserAssigned", userAssignedIdentities: Object.fromEntries(ids.slice(0, 150).map((id) => [id, {}])) });
    expect(ok.status).toBe(200);
    expect(vmss.userAssigned.size).toBe(150);
  });

  it("names unknown identities in FailedIdentityOperation the way MIC parses them, and applies nothing", async () => {
    const valid = cloud.createUserAssignedIdentity("valid");
    const ghost1 = `/subscriptions/${cloud.subscriptionId}/resourcegroups/${cloud.resourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ghost-1`;
    const ghost2 = ghost1.replace("ghost-1", "ghost-2");
    const r = await patchIdentity({ type: "UserAssigned", userAssignedIdentities: { [valid.id]: {}, [ghost1]: {}, [ghost2]: {} } });
    expect(r.status).toBe(400);
    expect(errorCode(r)).toBe("FailedIdentityOperation");
    const match = MIC_ID_PATTERN.exec(errorMessage(r));
    expect(match?.[0].slice(1, -1).split(",")).toEqual([ghost1, ghost2]);

    const after = (await armCall(vmssPath())).body as { identity?: { userAssignedIdentities?: Record<string, unknown> } };
    expect(after.identity?.userAssignedIdentities).toBeUndefined();
    expect(vmss.userAssigned.size).toBe(0);
  });

  it("shows null IDs for an identity deleted and re-created under the same name", async () => {
    const original = cloud.createUserAssignedIdentity("recreated");
    await patchIdentity({ type: "UserAssigned", userAssignedIdentities: { [original.id]: {} } });
    clock.advance(30_000);
    cloud.deleteUserAssignedIdentity(original);
    const recreated = cloud.createUserAssignedIdentity("recreated");
    expect(recreated.clientId).not.toBe(original.clientId);
    const body = (await armCall(vmssPath())).body as { identity: { userAssignedIdentities: Record<string, unknown> } };
    expect(body.identity.userAssignedIdentities[original.id]).toEqual({ principalId: null, clientId: null });
    // Adding it again does not heal the stale entry; it must be removed and re-added, as in Azure.
    expect((await patchIdentity({ type: "UserAssigned", userAssignedIdentities: { [recreated.id]: {} } })).status).toBe(200);
    expect(((await armCall(vmssPath())).body as typeof body).identity.userAssignedIdentities[original.id]).toEqual({ principalId: null, clientId: null });
  });

  it("reports an operation failure on the polling URL without applying the change", async () => {
    const id = cloud.createUserAssignedIdentity("id-a");
    arm.failNextOperations({ code: "InternalExecutionError", message: "An internal execution error occurred." });
    const r = await patchIdentity({ type: "UserAssigned", userAssignedIdentities: { [id.id]: {} } });
    expect(r.status).toBe(200);
    clock.advance(30_000);
    const polled = await call(String(r.headers["azure-asyncoperation"]), { headers: { authorization: `Bearer ${token}` }, dispatcher: agent });
    expect(polled.body).toMatchObject({ status: "Failed", error: { code: "InternalExecutionError" } });
    expect(vmss.userAssigned.size).toBe(0);
  });
});

describe("ArmServer throttling", () => {
  it("throttles VMSS writes with a bucket of 12 refilling 4/min, answering 429 with Retry-After", async () => {
    await arm.close();
    arm = await cloud.startArm({ operationDurationMs: 0 });
    const id = cloud.createUserAssignedIdentity("id-a");
    const body = { type: "UserAssigned", userAssignedIdentities: { [id.id]: {} } };
    for (let i = 0; i < 12; i++) expect((await patchIdentity(body)).status).toBe(200);
    const throttled = await patchIdentity(body);
    expect(throttled.status).toBe(429);
    expect(throttled.headers["retry-after"]).toBe("15");
    expect(throttled.body).toMatchObject({
      error: { code: "OperationNotAllowed", message: "The server rejected the request because too many requests have been received for this subscription.", details: [{ code: "TooManyRequests", target: "VMScaleSetUpdateResource" }] },
    });
    expect(throttled.headers["x-ms-ratelimit-remaining-resource"]).toBe("Microsoft.Compute/PutVMSubscriptionMaximum;1488,Microsoft.Compute/VMScaleSetUpdateResource;0");
    // Reads have their own budget.
    expect((await armCall(vmssPath())).status).toBe(200);
    clock.advance(14_000);
    expect((await patchIdentity(body)).status).toBe(429);
    clock.advance(1_000);
    expect((await patchIdentity(body)).status).toBe(200);
    expect((await patchIdentity(body)).status).toBe(429);
  });

  it("throttles writes per subscription across resources with ARM's own 429 (SubscriptionRequestsThrottled)", async () => {
    await arm.close();
    arm = await cloud.startArm({ operationDurationMs: 0, subscriptionWriteLimit: { capacity: 2, refillPerMinute: 60 } });
    const other = cloud.addScaleSet("other-vmss");
    const id = cloud.createUserAssignedIdentity("id-a");
    const body = { identity: { type: "UserAssigned", userAssignedIdentities: { [id.id]: {} } } };
    expect((await armCall(vmssPath(), { method: "PATCH", body })).status).toBe(200);
    expect((await armCall(`${other.id}?${API}`, { method: "PATCH", body })).status).toBe(200);
    const r = await armCall(`${other.id}?${API}`, { method: "PATCH", body });
    expect([r.status, r.headers["retry-after"], r.headers["x-ms-ratelimit-remaining-subscription-writes"]]).toEqual([429, "1", "0"]);
    const { oid } = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()) as { oid: string };
    expect(r.body).toEqual({
      error: { code: "SubscriptionRequestsThrottled", message: `Number of 'write' requests for subscription '${cloud.subscriptionId}' actor '${oid}' exceeded. Please try again after '1' seconds.` },
    });
    // Compute's buckets were not charged for the refused request.
    expect(r.headers["x-ms-ratelimit-remaining-resource"]).toBeUndefined();
    clock.advance(1_000);
    expect((await armCall(vmssPath(), { method: "PATCH", body })).status).toBe(200);
  });
});

describe("ArmServer user-assigned identities and call log", () => {
  it("creates, reads and deletes identities; a re-created one gets new IDs", async () => {
    const path = `/subscriptions/${cloud.subscriptionId}/resourceGroups/${cloud.resourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/pod-id?api-version=2023-01-31`;
    const created = await armCall(path, { method: "PUT", body: { location: "eastus" } });
    expect(created.status).toBe(201);
    const props = (created.body as { properties: { clientId: string; principalId: string; tenantId: string } }).properties;
    expect(props.tenantId).toBe(cloud.tenantId);
    expect((await armCall(path, { method: "PUT", body: { location: "eastus" } })).status).toBe(200);
    expect((await armCall(path)).body).toMatchObject({ properties: { clientId: props.clientId } });
    expect((await armCall(path, { method: "DELETE" })).status).toBe(200);
    expect((await armCall(path, { method: "DELETE" })).status).toBe(204);
    expect(errorCode(await armCall(path))).toBe("ResourceNotFound");
    const again = await armCall(path, { method: "PUT", body: { location: "eastus" } });
    expect((again.body as { properties: { clientId: string } }).properties.clientId).not.toBe(props.clientId);
  });

  it("records every call with method, path, status, time and write body", async () => {
    await armCall(vmssPath());
    await patchIdentity({ type: "None" });
    await armCall(vmssPath(), { token: null });
    expect(arm.calls.map((c) => [c.method, c.path, c.status])).toEqual([
      ["GET", vmss.id, 200],
      ["PATCH", vmss.id, 200],
      ["GET", vmss.id, 401],
    ]);
    expect(arm.calls[1]!.body).toEqual({ identity: { type: "None" } });
    expect(arm.calls[0]!.atMs).toBe(clock.now());
    expect(arm.callsTo("PATCH", /virtualMachineScaleSets/)).toHaveLength(1);
  });
});
