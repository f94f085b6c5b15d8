import { describe, expect, it } from "vitest";
import { failedIdentityIds, nextIdentityType, nodeComputeTarget, planIdentityPatches, WriteBudget } from "../src/index";
import { retryAfterMs } from "@podidentity/daemon";
import { cloudConfigFromEnv, createArmCredential, parseCloudConfig } from "../src/runtime/cloud-config";
import { CloudConfigError } from "../src/errors";

const id = (n: number | string): string => `/subscriptions/s/resourcegroups/rg/providers/microsoft.managedidentity/userassignedidentities/id-${n}`;

describe("identity PATCH planning (v1.8's delta bodies and type transitions)", () => {
  it("sends only the delta: {} to add, null to remove, unchanged IDs omitted", () => {
    const patches = planIdentityPatches(new Set([id(1), id(2)]), "UserAssigned", { add: [id(3), id(1)], remove: [id(2)] });
    expect(patches).toEqual([{ type: "UserAssigned", userAssignedIdentities: { [id(3)]: {}, [id(2)]: null } }]);
  });

  it("keeps a system-assigned identity and drops to SystemAssigned or None when no user identity is left", () => {
    expect(nextIdentityType("SystemAssigned", 1)).toBe("SystemAssigned, UserAssigned");
    expect(nextIdentityType("None", 1)).toBe("UserAssigned");
    expect(nextIdentityType(undefined, 1)).toBe("UserAssigned");
    expect(nextIdentityType("SystemAssigned, UserAssigned", 0)).toBe("SystemAssigned");
    expect(nextIdentityType("UserAssigned", 0)).toBe("None");
    expect(planIdentityPatches(new Set([id(1)]), "SystemAssigned, UserAssigned", { add: [], remove: [id(1)] })).toEqual([{ type: "SystemAssigned" }]);
  });

  it("splits into requests of at most 150 entries, adds first", () => {
    const adds = Array.from({ length: 200 }, (_, i) => id(i));
    const patches = planIdentityPatches(new Set([id("old")]), "UserAssigned", { add: adds, remove: [id("old")] });
    expect(patches.map((p) => Object.keys(p.userAssignedIdentities ?? {}).length)).toEqual([150, 51]);
    expect(patches[1]!.userAssignedIdentities![id("old")]).toBeNull();
  });

  it("no delta, no PATCH", () => {
    expect(planIdentityPatches(new Set([id(1)]), "UserAssigned", { add: [id(1)], remove: [id(9)] })).toEqual([]);
  });

  it("re-adds a stale entry with a removal first, in its own request", () => {
    const patches = planIdentityPatches(new Set([id(1), id(2)]), "UserAssigned", { add: [], remove: [], readd: [id(1)] });
    expect(patches).toEqual([
      { type: "UserAssigned", userAssignedIdentities: { [id(1)]: null } },
      { type: "UserAssigned", userAssignedIdentities: { [id(1)]: {} } },
    ]);
  });
});

describe("FailedIdentityOperation / LinkedAuthorizationFailed", () => {
  it("extracts the named identity IDs (canonical), ignoring the VM/VMSS ID the message also quotes", () => {
    const message =
      "Identity operation for resource '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/pool' failed with error 'Failed to perform resource identity operation. Status: 'NotFound'. Response: '{\"error\":{\"code\":\"NotFound\",\"message\":\"Resource '/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Ghost-1,/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ghost-2' was not found.\"}}'.'.";
    const ghost = (n: number): string => `/subscriptions/s/resourcegroups/rg/providers/microsoft.managedidentity/userassignedidentities/ghost-${n}`;
    expect(failedIdentityIds("FailedIdentityOperation", message)).toEqual([ghost(1), ghost(2)]);
  });

  it("only for those two codes", () => {
    expect(failedIdentityIds("InternalServerError", `'${id(1)}'`)).toEqual([]);
    expect(failedIdentityIds("LinkedAuthorizationFailed", `The client has permission on '${id(1)}'? no`)).toEqual([id(1)]);
  });
});

describe("Retry-After", () => {
  it("reads seconds, HTTP dates and the millisecond headers", () => {
    expect(retryAfterMs({ "retry-after": "20" }, 0)).toBe(20_000);
    expect(retryAfterMs({ "retry-after": new Date(10_000).toUTCString() }, 4_000)).toBe(6_000);
    expect(retryAfterMs({ "x-ms-retry-after-ms": "1500", "retry-after": "9" }, 0)).toBe(1_500);
    expect(retryAfterMs({}, 0)).toBeUndefined();
    expect(retryAfterMs({ "retry-after": "soon" }, 0)).toBeUndefined();
  });
});

describe("write budget", () => {
  it("allows a burst, then one write per refill interval, and blocks after a 429", async () => {
    let now = 0;
    const waits: number[] = [];
    const clock = { now: () => now, sleep: async (ms: number) => void (waits.push(ms), (now += ms)) };
    const budget = new WriteBudget({ capacity: 2, refillPerMinute: 4 }, clock);
    await budget.acquire("vmss");
    await budget.acquire("vmss");
    expect(waits).toEqual([]);
    await budget.acquire("vmss");
    expect(waits).toEqual([15_000]);
    await budget.acquire("other");
    expect(waits).toEqual([15_000]);
    budget.block("other", 20_000);
    expect(budget.waitMs("other")).toBe(20_000);
  });
});

describe("nodes to VM/VMSS", () => {
  it("maps a VMSS instance to its scale set and a VM to itself; falls back to the node name as the VM (v1.8)", () => {
    const vmss = nodeComputeTarget({ spec: { providerID: "azure:///subscriptions/S/resourceGroups/MC_rg/providers/Microsoft.Compute/virtualMachineScaleSets/aks-pool/virtualMachines/3" } }, {});
    expect(vmss).toMatchObject({ kind: "virtualMachineScaleSets", name: "aks-pool", resourceGroup: "MC_rg", subscriptionId: "S" });
    const vm = nodeComputeTarget({ spec: { providerID: "azure:///subscriptions/S/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-1" } }, {});
    expect(vm).toMatchObject({ kind: "virtualMachines", name: "vm-1" });
    expect(nodeComputeTarget({ metadata: { name: "node-a" } }, { subscriptionId: "S", resourceGroup: "rg" })).toMatchObject({ kind: "virtualMachines", name: "node-a" });
    expect(nodeComputeTarget({ metadata: { name: "kind-node" }, spec: { providerID: "kind://docker/x" } }, { subscriptionId: "S", resourceGroup: "rg" })).toBeUndefined();
  });
});

describe("flags and cloud config", () => {
  it("reads azure.json and v1.8's environment fallback; errors name keys, never secret values", () => {
    const config = parseCloudConfig(JSON.stringify({ cloud: "AzurePublicCloud", tenantId: "t", aadClientId: "c", aadClientSecret: "s3cret", subscriptionId: "sub", resourceGroup: "rg", useManagedIdentityExtension: false }));
    expect(config).toMatchObject({ tenantId: "t", aadClientId: "c", subscriptionId: "sub", resourceGroup: "rg", useManagedIdentityExtension: false });
    expect(cloudConfigFromEnv({ TENANT_ID: "t", CLIENT_ID: "c", CLIENT_SECRET: "x", USE_MSI: "true", USER_ASSIGNED_MSI_CLIENT_ID: "u" })).toMatchObject({ tenantId: "t", useManagedIdentityExtension: true, userAssignedIdentityID: "u" });
    const error = (() => {
      try {
        createArmCredential({ cloud: "AzurePublicCloud", useManagedIdentityExtension: false, tenantId: "t", aadClientSecret: "s3cret" });
      } catch (e) {
        return e as Error;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(CloudConfigError);
    expect(error!.message).toMatch(/aadClientId/);
    expect(error!.message).not.toMatch(/s3cret/);
    expect(() => parseCloudConfig("{not json", "/etc/kubernetes/azure.json")).toThrow(/azure.json is not valid JSON/);
  });
});

describe("azure.json reload", () => {
  it("keeps the previous credential when the file becomes unusable, and says why", async () => {
    const { mkdtemp, writeFile } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const { ReloadingArmCredential } = await import("../src/index");
    const dir = await mkdtemp(join(tmpdir(), "mic-cc-"));
    const path = join(dir, "azure.json");
    await writeFile(path, JSON.stringify({ tenantId: "t", aadClientId: "c", aadClientSecret: "s" }));
    const previous = { getToken: async () => ({ token: "previous", expiresOnTimestamp: Date.now() + 3_600_000 }) };
    const errors: string[] = [];
    const credential = new ReloadingArmCredential(path, previous, { onError: (e) => errors.push(e.message) });
    await writeFile(path, JSON.stringify({ tenantId: "t", aadClientSecret: "rotated-secret" }));
    await credential.reload();
    credential.close();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/aadClientId/);
    expect(errors[0]).not.toMatch(/rotated-secret/);
    expect((await credential.getToken("https://management.azure.com/.default"))?.token).toBe("previous");
  });
});

describe("write budget paced from ARM's x-ms-ratelimit-remaining-* headers", () => {
  const manual = (): { clock: { now(): number; sleep(ms: number): Promise<void> }; waits: number[] } => {
    let now = 0;
    const waits: number[] = [];
    return { clock: { now: () => now, sleep: async (ms: number) => void (waits.push(ms), (now += ms)) }, waits };
  };

  it("lowers a VM/VMSS's bucket to what Compute reports left (other writers spend from it too)", async () => {
    const { clock, waits } = manual();
    const budget = new WriteBudget({ capacity: 12, refillPerMinute: 4 }, clock);
    budget.observe("vmss", { "x-ms-ratelimit-remaining-resource": "Microsoft.Compute/PutVMSubscriptionMaximum;1499,Microsoft.Compute/VMScaleSetUpdateResource;0" });
    expect(budget.waitMs("vmss")).toBe(15_000);
    expect(budget.waitMs("other")).toBe(0);
    await budget.acquire("vmss");
    expect(waits).toEqual([15_000]);
    // Unreadable parts are ignored, not taken as 0.
    budget.observe("other", { "x-ms-ratelimit-remaining-resource": "garbage,Microsoft.Compute/X;" });
    expect(budget.waitMs("other")).toBe(0);
  });

  it("at or below the low watermark of subscription writes, spaces every write at ARM's refill interval", async () => {
    const { clock, waits } = manual();
    const budget = new WriteBudget({ capacity: 12, refillPerMinute: 4, subscriptionLowWatermark: 20, subscriptionRefillIntervalMs: 100 }, clock);
    expect(budget.subscriptionWritesRemaining()).toBeUndefined();
    budget.observe(undefined, { "x-ms-ratelimit-remaining-subscription-writes": "23" });
    for (const key of ["a", "b", "c"]) await budget.acquire(key);
    expect(waits).toEqual([]);
    // 20 left: the next write waits until ARM has refilled one, and so on, across all VM/VMSSes.
    expect(budget.waitMs("d")).toBe(100);
    await budget.acquire("d");
    await budget.acquire("e");
    expect(waits).toEqual([100, 100]);
    // ARM's lower count (another client of the same principal) wins over our estimate; a higher one does not.
    budget.observe("e", { "x-ms-ratelimit-remaining-subscription-writes": "5" });
    expect(budget.waitMs("f")).toBe(1_600);
    budget.observe("e", { "x-ms-ratelimit-remaining-subscription-writes": "199" });
    expect(budget.waitMs("f")).toBe(1_600);
  });

  it("ignores a subscription-writes header that is not a count (empty, hex, negative, text)", () => {
    const { clock } = manual();
    const budget = new WriteBudget({ capacity: 12, refillPerMinute: 4, subscriptionLowWatermark: 20, subscriptionRefillIntervalMs: 100 }, clock);
    for (const value of ["", " ", "0x10", "-1", "1e3", "many"]) budget.observe(undefined, { "x-ms-ratelimit-remaining-subscription-writes": value });
    expect(budget.subscriptionWritesRemaining()).toBeUndefined();
    expect(budget.waitMs("a")).toBe(0);
  });

  it("blocks every write after ARM's own subscription 429, one VM/VMSS after Compute's", () => {
    const { clock } = manual();
    const budget = new WriteBudget({ capacity: 12, refillPerMinute: 4 }, clock);
    budget.block(undefined, 3_000);
    expect([budget.waitMs("a"), budget.waitMs("b")]).toEqual([3_000, 3_000]);
    expect(() => new WriteBudget({ capacity: 1, refillPerMinute: 1, subscriptionRefillIntervalMs: 0 }, clock)).toThrow(/WriteBudget: subscriptionRefillIntervalMs must be > 0/);
  });
});
