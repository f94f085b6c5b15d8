import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Agent } from "undici";
import { AzureCloud, ManualClock, type ArmServer, type ComputeResource } from "../../src/index";
import { armToken, caAgent, call, type JsonResponse } from "../helpers/azure-clients";

// What the ARM emulator does as Azure does, where a lenient emulator would let a client pass that fails on
// Azure: rate-limit and request-id headers, ARM's own token buckets, writes while an operation runs, and the reads
// `az` and operators use.

const API = "api-version=2023-09-01";
const OP_MS = 30_000;

let clock: ManualClock;
let cloud: AzureCloud;
let arm: ArmServer;
let agent: Agent;
let token: string;
let vmss: ComputeResource;

beforeEach(async () => {
  clock = new ManualClock(Date.now());
  cloud = await AzureCloud.create({ clock });
  arm = await cloud.startArm({ operationDurationMs: OP_MS, propagationDelayMs: 0 });
  agent = caAgent(cloud.ca.certPem);
  token = await armToken(cloud);
  vmss = cloud.addScaleSet("pool0", cloud.resourceGroup, { capacity: 3 });
});

afterEach(async () => {
  await agent.close();
  await cloud.close();
});

async function restart(options: Parameters<AzureCloud["startArm"]>[0]): Promise<void> {
  await arm.close();
  arm = await cloud.startArm({ operationDurationMs: OP_MS, propagationDelayMs: 0, ...options });
}

function armCall(path: string, options: { method?: "GET" | "PATCH" | "PUT" | "DELETE"; body?: unknown; headers?: Record<string, string> } = {}): Promise<JsonResponse> {
  return call(`${arm.url}${path}${path.includes("?") ? "&" : "?"}${API}`, {
    method: options.method ?? "GET",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}`, ...options.headers },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    dispatcher: agent,
  });
}

const patchIdentity = (ids: string[]): Promise<JsonResponse> =>
  armCall(vmss.id, { method: "PATCH", body: { identity: { type: "UserAssigned", userAssignedIdentities: Object.fromEntries(ids.map((id) => [id, {}])) } } });
const poll = async (r: JsonResponse): Promise<{ status: string; error?: { code: string; message: string } }> =>
  (await call(String(r.headers["azure-asyncoperation"]), { headers: { authorization: `Bearer ${token}` }, dispatcher: agent })).body as { status: string; error?: { code: string; message: string } };
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe("ArmServer response headers", () => {
  it("puts x-ms-request-id and x-ms-correlation-request-id on every answer, echoing the caller's IDs", async () => {
    const plain = await armCall(`/subscriptions/${cloud.subscriptionId}`);
    const notFound = await armCall(`/subscriptions/${cloud.subscriptionId}/resourceGroups/nope/providers/Microsoft.Compute/virtualMachineScaleSets/x`);
    const unauthenticated = await call(`${arm.url}/subscriptions?${API}`, { dispatcher: agent });
    for (const r of [plain, notFound, unauthenticated]) {
      expect(r.headers["x-ms-request-id"]).toMatch(GUID);
      // Without the caller's own, ARM's correlation ID is the request's.
      expect(r.headers["x-ms-correlation-request-id"]).toBe(r.headers["x-ms-request-id"]);
      expect(r.headers["x-ms-routing-request-id"]).toMatch(/^EASTUS:\d{8}T\d{6}Z:[0-9a-f-]{36}$/);
    }
    expect([notFound.status, unauthenticated.status]).toEqual([404, 401]);
    expect(new Set([plain, notFound, unauthenticated].map((r) => r.headers["x-ms-request-id"])).size).toBe(3);

    const mine = await armCall(`/subscriptions/${cloud.subscriptionId}`, { headers: { "x-ms-correlation-request-id": "corr-1", "x-ms-client-request-id": "client-1" } });
    expect(mine.headers["x-ms-correlation-request-id"]).toBe("corr-1");
    expect(mine.headers["x-ms-client-request-id"]).toBe("client-1");
    expect(mine.headers["x-ms-request-id"]).toMatch(GUID);
    // Echoed values are bounded and printable: anything else is not echoed.
    const long = await armCall(`/subscriptions/${cloud.subscriptionId}`, { headers: { "x-ms-client-request-id": "x".repeat(201) } });
    expect(long.headers["x-ms-client-request-id"]).toBeUndefined();
  });

  it("reports remaining subscription reads and writes, and Compute's per-resource buckets on VM/VMSS writes", async () => {
    const a = cloud.createUserAssignedIdentity("id-a");
    expect((await armCall(vmss.id)).headers["x-ms-ratelimit-remaining-subscription-reads"]).toBe("249");
    expect((await armCall(vmss.id)).headers["x-ms-ratelimit-remaining-subscription-reads"]).toBe("248");
    const write = await patchIdentity([a.id]);
    expect(write.status).toBe(200);
    expect(write.headers["x-ms-ratelimit-remaining-subscription-writes"]).toBe("199");
    expect(write.headers["x-ms-ratelimit-remaining-subscription-reads"]).toBeUndefined();
    expect(write.headers["x-ms-ratelimit-remaining-resource"]).toBe("Microsoft.Compute/PutVMSubscriptionMaximum;1499,Microsoft.Compute/VMScaleSetUpdateResource;11");
    const del = await armCall(`/subscriptions/${cloud.subscriptionId}/resourceGroups/${cloud.resourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-a`, { method: "DELETE" });
    expect(del.headers["x-ms-ratelimit-remaining-subscription-deletes"]).toBe("199");
    // Polls of a long-running operation are reads.
    const polled = await call(String(write.headers["azure-asyncoperation"]), { headers: { authorization: `Bearer ${token}` }, dispatcher: agent });
    expect(polled.headers["x-ms-ratelimit-remaining-subscription-reads"]).toBe("247");
  });
});

describe("ArmServer subscription token buckets (ARM's documented 2024 limits)", () => {
  it("allows 200 writes, then answers ARM's 429 SubscriptionRequestsThrottled, refilling 10 per second", async () => {
    const put = (i: number): Promise<JsonResponse> => armCall(`/subscriptions/${cloud.subscriptionId}/resourceGroups/${cloud.resourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai-${i}`, { method: "PUT", body: { location: "eastus" } });
    for (let i = 0; i < 200; i++) expect((await put(i)).status).toBe(201);
    const refused = await put(200);
    expect(refused.status).toBe(429);
    expect(refused.headers["retry-after"]).toBe("1");
    expect(refused.headers["x-ms-ratelimit-remaining-subscription-writes"]).toBe("0");
    expect((refused.body as { error: { code: string; message: string } }).error).toEqual({
      code: "SubscriptionRequestsThrottled",
      message: `Number of 'write' requests for subscription '${cloud.subscriptionId}' actor '00000000-0000-0000-0000-00000000a11c' exceeded. Please try again after '1' seconds.`,
    });
    // Another principal has its own bucket.
    const other = (await cloud.tokenIssuer.issue({ audience: "https://management.azure.com/", tenantId: cloud.tenantId, objectId: "00000000-0000-0000-0000-00000000b0b0", appId: "00000000-0000-0000-0000-0000000000b2" })).token;
    expect((await armCall(`/subscriptions/${cloud.subscriptionId}/resourceGroups/${cloud.resourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/other`, { method: "PUT", body: {}, headers: { authorization: `Bearer ${other}` } })).status).toBe(201);
    clock.advance(99);
    expect((await put(200)).status).toBe(429);
    clock.advance(1);
    expect((await put(200)).status).toBe(201);
    expect((await put(201)).status).toBe(429);
  });

  it("allows 250 reads, then 429, refilling 25 per second", async () => {
    for (let i = 0; i < 250; i++) expect((await armCall(`/subscriptions/${cloud.subscriptionId}/resourcegroups`)).status).toBe(200);
    const refused = await armCall(`/subscriptions/${cloud.subscriptionId}/resourcegroups`);
    expect([refused.status, (refused.body as { error: { code: string } }).error.code]).toEqual([429, "SubscriptionRequestsThrottled"]);
    expect((refused.body as { error: { message: string } }).error.message).toContain("Number of 'read' requests");
    clock.advance(40);
    expect((await armCall(`/subscriptions/${cloud.subscriptionId}/resourcegroups`)).status).toBe(200);
  });
});

describe("ArmServer writes while an operation is running", () => {
  it("answers 409 Conflict by default and applies nothing; the running operation is untouched", async () => {
    const [a, b] = [cloud.createUserAssignedIdentity("id-a"), cloud.createUserAssignedIdentity("id-b")];
    const first = await patchIdentity([a.id]);
    expect(first.status).toBe(200);
    clock.advance(OP_MS - 1);
    const second = await patchIdentity([b.id]);
    expect(second.status).toBe(409);
    expect(second.body).toEqual({
      error: { code: "Conflict", message: "The request failed due to conflict with a concurrent request. To resolve it, please refer to https://aka.ms/activitylog to get more details on the conflicting requests." },
    });
    expect([...vmss.userAssigned.values()].map((x) => x.resourceId)).toEqual([a.id]);
    clock.advance(1);
    expect((await poll(first)).status).toBe("Succeeded");
    expect((await patchIdentity([b.id])).status).toBe(200);
  });

  it("under preempt, accepts the newer PATCH and ends the running operation Canceled with OperationPreempted", async () => {
    await restart({ concurrentWrites: "preempt" });
    const [a, b] = [cloud.createUserAssignedIdentity("id-a"), cloud.createUserAssignedIdentity("id-b")];
    const first = await patchIdentity([a.id]);
    clock.advance(10_000);
    const second = await patchIdentity([b.id]);
    expect(second.status).toBe(200);
    expect(await poll(first)).toMatchObject({ status: "Canceled", error: { code: "OperationPreempted", message: "Operation execution has been preempted by a more recent operation." } });
    expect((await poll(second)).status).toBe("InProgress");
    // What the preempted operation was rolling out lands with the newer one.
    const end = clock.now() + OP_MS;
    expect([...vmss.userAssigned.values()].map((x) => [x.resourceId, x.effectiveAtMs])).toEqual([[a.id, end], [b.id, end]]);
    clock.advance(OP_MS);
    expect((await poll(second)).status).toBe("Succeeded");
    expect((await poll(first)).status).toBe("Canceled");
  });

  it("under accept, runs both (the lenient behaviour, for tests that want it)", async () => {
    await restart({ concurrentWrites: "accept" });
    const [a, b] = [cloud.createUserAssignedIdentity("id-a"), cloud.createUserAssignedIdentity("id-b")];
    expect((await patchIdentity([a.id])).status).toBe(200);
    expect((await patchIdentity([b.id])).status).toBe(200);
    await expect(restart({ concurrentWrites: "sometimes" as never })).rejects.toThrow(/concurrentWrites must be one of conflict, preempt, accept/);
  });
});

describe("ArmServer reads for az and operators", () => {
  it("lists and shows resource groups as `az group list` / `az group show` read them", async () => {
    cloud.compute.addResourceGroup(cloud.subscriptionId, "Other-RG", "westeurope");
    const list = await armCall(`/subscriptions/${cloud.subscriptionId}/resourcegroups`);
    expect(list.status).toBe(200);
    expect(list.body).toEqual({
      value: [
        { id: `/subscriptions/${cloud.subscriptionId}/resourceGroups/${cloud.resourceGroup}`, name: cloud.resourceGroup, type: "Microsoft.Resources/resourceGroups", location: "eastus", properties: { provisioningState: "Succeeded" } },
        { id: `/subscriptions/${cloud.subscriptionId}/resourceGroups/Other-RG`, name: "Other-RG", type: "Microsoft.Resources/resourceGroups", location: "westeurope", properties: { provisioningState: "Succeeded" } },
      ],
    });
    expect((await armCall(`/subscriptions/${cloud.subscriptionId}/resourceGroups/other-rg`)).body).toMatchObject({ name: "Other-RG" });
    const missing = await armCall(`/subscriptions/${cloud.subscriptionId}/resourceGroups/nope`);
    expect([missing.status, (missing.body as { error: { code: string } }).error.code]).toEqual([404, "ResourceGroupNotFound"]);
  });

  it("lists the scale sets of a resource group, a scale set's instances, and instance views", async () => {
    cloud.addScaleSet("pool1");
    const rg = `/subscriptions/${cloud.subscriptionId}/resourceGroups/${cloud.resourceGroup}/providers/Microsoft.Compute`;
    const sets = (await armCall(`${rg}/virtualMachineScaleSets`)).body as { value: Array<{ name: string; sku: { capacity: number } }> };
    expect(sets.value.map((s) => [s.name, s.sku.capacity])).toEqual([["pool0", 3], ["pool1", 1]]);
    expect(((await armCall(`${rg}/virtualMachines`)).body as { value: unknown[] }).value).toEqual([]);

    const vms = (await armCall(`${vmss.id}/virtualMachines`)).body as { value: Array<{ name: string; id: string; instanceId: string; properties: { osProfile: { computerName: string } } }> };
    expect(vms.value.map((v) => [v.name, v.instanceId, v.id, v.properties.osProfile.computerName])).toEqual([
      ["pool0_0", "0", `${vmss.id}/virtualMachines/0`, "pool0000000"],
      ["pool0_1", "1", `${vmss.id}/virtualMachines/1`, "pool0000001"],
      ["pool0_2", "2", `${vmss.id}/virtualMachines/2`, "pool0000002"],
    ]);
    expect((await armCall(`${vmss.id}/virtualMachines/2`)).body).toMatchObject({ name: "pool0_2", instanceId: "2" });
    expect((await armCall(`${vmss.id}/virtualMachines/3`)).status).toBe(404);

    const idle = (await armCall(`${vmss.id}/instanceView`)).body;
    expect(idle).toMatchObject({ virtualMachine: { statusesSummary: [{ code: "ProvisioningState/succeeded", count: 3 }] }, statuses: [{ code: "ProvisioningState/succeeded" }] });
    await patchIdentity([cloud.createUserAssignedIdentity("id-a").id]);
    expect((await armCall(`${vmss.id}/instanceView`)).body).toMatchObject({ statuses: [{ code: "ProvisioningState/updating", displayStatus: "Updating" }] });
    expect((await armCall(`${vmss.id}/virtualMachines/0/instanceView`)).body).toMatchObject({ computerName: "pool0000000", statuses: [{ code: "ProvisioningState/updating" }, { code: "PowerState/running" }] });
    const vm = cloud.addVirtualMachine("vm0");
    expect((await armCall(`${vm.id}/instanceView`)).body).toMatchObject({ computerName: "vm0", statuses: [{ code: "ProvisioningState/succeeded" }, { code: "PowerState/running" }] });
    expect((await armCall(`${vmss.id}/instanceView`, { method: "PATCH", body: {} })).status).toBe(405);
  });
});
