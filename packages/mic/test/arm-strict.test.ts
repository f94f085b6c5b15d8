import { afterEach, describe, expect, it } from "vitest";
import { Agent, request } from "undici";
import type { ComputeResource } from "@podidentity/testbed";
import { Harness, until } from "./helpers/harness";

// MIC against an ARM emulator as strict as Azure: a PATCH naming an unknown identity fails whole, a PATCH while
// another operation runs is refused (409) or preempts it, and ARM's budget left comes back in headers.

let h: Harness;
let foreign: Agent | undefined;

afterEach(async () => {
  await foreign?.close();
  foreign = undefined;
  await h.close();
});

const patchesTo = (r: ComputeResource): Array<{ status: number; atMs: number; body?: unknown }> => h.arm.calls.filter((c) => c.method === "PATCH" && c.path.toLowerCase() === r.id.toLowerCase());
const identityKeys = (body: unknown): string[] => Object.keys((body as { identity?: { userAssignedIdentities?: object } }).identity?.userAssignedIdentities ?? {}).map((k) => k.toLowerCase());

/** Someone else (an AKS upgrade, `az vmss update`) PATCHes the scale set: an operation of `durationMs` starts. */
async function foreignPatch(vmss: ComputeResource, identityId: string, durationMs: number): Promise<string> {
  foreign ??= new Agent({ connect: { ca: h.cloud.ca.certPem } });
  const { token } = await h.cloud.tokenIssuer.issue({ audience: "https://management.azure.com/", tenantId: h.cloud.tenantId, objectId: "00000000-0000-0000-0000-0000000a2b2c", appId: "00000000-0000-0000-0000-0000000a2b2d" });
  const before = h.arm.operationDurationMs;
  h.arm.operationDurationMs = durationMs;
  try {
    const res = await request(`${h.arm.url}${vmss.id}?api-version=2023-09-01`, {
      method: "PATCH",
      dispatcher: foreign,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ identity: { type: "UserAssigned", userAssignedIdentities: { [identityId]: {} } } }),
    });
    await res.body.text();
    expect(res.statusCode).toBe(200);
    return String(res.headers["azure-asyncoperation"]);
  } finally {
    h.arm.operationDurationMs = before;
  }
}

async function operationStatus(url: string): Promise<string> {
  const { token } = await h.cloud.tokenIssuer.issue({ audience: "https://management.azure.com/", tenantId: h.cloud.tenantId, objectId: "00000000-0000-0000-0000-0000000a2b2c", appId: "00000000-0000-0000-0000-0000000a2b2d" });
  const res = await request(url, { dispatcher: foreign!, headers: { authorization: `Bearer ${token}` } });
  return ((await res.body.json()) as { status: string }).status;
}

describe("MIC and ARM's atomic identity PATCH (drop-and-retry)", () => {
  it("a PATCH with one valid and one unknown identity changes nothing; MIC drops the one ARM names and converges for the other", async () => {
    h = await Harness.start();
    const vmss = h.scaleSet("pool0");
    h.node("node-0", vmss);
    const valid = h.identity("valid");
    const ghost = `/subscriptions/${h.cloud.subscriptionId}/resourcegroups/${h.cloud.resourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ghost`;
    h.msiIdentity("valid", valid);
    h.azureIdentity("ghost", { type: 0, resourceID: ghost, clientID: "00000000-0000-0000-0000-00000000dead" });
    h.binding("valid", "valid", "web");
    h.binding("ghost", "ghost", "web");
    h.pod("web-1", { selector: "web", node: "node-0" });
    await h.startMic({ batchWindowMs: 200 });
    await until(() => h.assignedState("default", "web-1-default-valid") === "Assigned", "valid Assigned");

    const patches = patchesTo(vmss);
    const rejected = patches.find((p) => p.status === 400 && identityKeys(p.body).includes(ghost.toLowerCase()) && identityKeys(p.body).includes(valid.id.toLowerCase()));
    expect(rejected, "ARM refused a PATCH carrying both").toBeDefined();
    const applied = patches.filter((p) => p.status === 200);
    expect(applied.map((p) => identityKeys(p.body))).toEqual([[valid.id.toLowerCase()]]);
    expect(applied[0]!.atMs).toBeGreaterThanOrEqual(rejected!.atMs);
    expect(h.held(vmss)).toEqual([valid.id.toLowerCase()]);
    expect(h.assignedState("default", "web-1-default-ghost")).toBe("Created");
  });
});

describe("MIC and an operation already running on the VM/VMSS", () => {
  it("409 Conflict (the default): waits for the running operation, then plans again; one 409 at most, no retry storm", async () => {
    h = await Harness.start();
    const vmss = h.scaleSet("pool0");
    h.node("node-0", vmss);
    const [a, b, other] = [h.identity("id-a"), h.identity("id-b"), h.identity("someone-elses")];
    h.msiIdentity("id-a", a);
    h.msiIdentity("id-b", b);
    h.binding("a", "id-a", "a");
    h.binding("b", "id-b", "b");
    h.pod("web-a", { selector: "a", node: "node-0" });
    await h.startMic();
    await until(() => h.assignedState("default", "web-a-default-id-a") === "Assigned", "id-a Assigned");

    // MIC remembers the state its own PATCH returned; meanwhile someone else starts a 1.5 s operation.
    await foreignPatch(vmss, other.id, 1_500);
    const foreignEndMs = vmss.busyUntilMs;
    h.pod("web-b", { selector: "b", node: "node-0" });
    await until(() => h.assignedState("default", "web-b-default-id-b") === "Assigned", "id-b Assigned");

    const mine = patchesTo(vmss).filter((p) => identityKeys(p.body).includes(b.id.toLowerCase()));
    expect(mine.filter((p) => p.status === 409).length).toBeLessThanOrEqual(1);
    const ok = mine.filter((p) => p.status === 200);
    expect(ok).toHaveLength(1);
    expect(ok[0]!.atMs).toBeGreaterThanOrEqual(foreignEndMs);
    expect(h.held(vmss)).toEqual([a.id, b.id, other.id].map((x) => x.toLowerCase()).sort());
  });

  it("preempt: MIC does not preempt a running operation it can see; it waits, and the other operation succeeds", async () => {
    h = await Harness.start({ arm: { concurrentWrites: "preempt" } });
    const vmss = h.scaleSet("pool0");
    h.node("node-0", vmss);
    const [a, other] = [h.identity("id-a"), h.identity("someone-elses")];
    h.msiIdentity("id-a", a);
    h.binding("a", "id-a", "a");
    const operation = await foreignPatch(vmss, other.id, 1_500);
    const foreignEndMs = vmss.busyUntilMs;
    h.pod("web-a", { selector: "a", node: "node-0" });
    await h.startMic();
    await until(() => h.assignedState("default", "web-a-default-id-a") === "Assigned", "id-a Assigned");
    expect(await operationStatus(operation)).toBe("Succeeded");
    const mine = patchesTo(vmss).filter((p) => identityKeys(p.body).includes(a.id.toLowerCase()));
    expect(mine.map((p) => p.status)).toEqual([200]);
    expect(mine[0]!.atMs).toBeGreaterThanOrEqual(foreignEndMs);
  });
});

describe("MIC paced by x-ms-ratelimit-remaining-subscription-writes", () => {
  it("once few writes are left, spaces them at ARM's refill: 28 scale sets through a 25-write bucket without a 429", async () => {
    // ARM's bucket shrunk to 25 refilled 1/s so the test is short, and MIC told that refill; Compute out of the way.
    h = await Harness.start({
      arm: { subscriptionWriteLimit: { capacity: 25, refillPerMinute: 60 }, resourceWriteLimit: { capacity: 100, refillPerMinute: 600 } },
    });
    const sets = Array.from({ length: 28 }, (_, i) => h.scaleSet(`pool${i}`));
    const id = h.identity("id-a");
    h.msiIdentity("id-a", id);
    h.binding("a", "id-a", "a");
    sets.forEach((s, i) => h.node(`node-${i}`, s));
    await h.startMic({ writeBudget: { capacity: 12, refillPerMinute: 4, subscriptionLowWatermark: 2, subscriptionRefillIntervalMs: 1_000 } });
    const assigned = (n: number): boolean => Array.from({ length: n }, (_, i) => h.assignedState("default", `web-${i}-default-id-a`)).every((s) => s === "Assigned");
    // 22 first: ARM's answers then report 3 writes left.
    for (let i = 0; i < 22; i++) h.pod(`web-${i}`, { selector: "a", node: `node-${i}` });
    await until(() => assigned(22), "first 22 Assigned");
    // Then 6 at once: without reading the header MIC would send them together and ARM would refuse some.
    for (let i = 22; i < 28; i++) h.pod(`web-${i}`, { selector: "a", node: `node-${i}` });
    await until(() => assigned(28), "all 28 Assigned", 20_000);
    expect(h.arm.calls.filter((c) => c.status === 429)).toEqual([]);
    const writes = h.arm.calls.filter((c) => c.method === "PATCH" && c.status === 200).map((c) => c.atMs);
    expect(writes).toHaveLength(28);
    // The last ones went out about a second apart, as ARM refilled.
    const last = writes.slice(-4);
    for (let i = 1; i < last.length; i++) expect(last[i]! - last[i - 1]!).toBeGreaterThanOrEqual(900);
  });
});
