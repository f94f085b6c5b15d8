import { afterEach, describe, expect, it } from "vitest";
import { Harness, until } from "./helpers/harness";

let h: Harness;
afterEach(async () => {
  await h.close();
});

describe("ARM throttling", () => {
  it("waits out a 429's Retry-After and then succeeds", async () => {
    // ARM allows 1 PATCH per 3 s per scale set; MIC is told its budget is far larger, so it meets the 429.
    h = await Harness.start({ arm: { resourceWriteLimit: { capacity: 1, refillPerMinute: 20 } } });
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    for (const n of ["id-a", "id-b"]) {
      h.msiIdentity(n, h.identity(n));
      h.binding(n, n, n);
    }
    const mic = await h.startMic({ writeBudget: { capacity: 100, refillPerMinute: 6_000 } });
    h.pod("pod-a", { selector: "id-a", node: "node-0" });
    await until(() => h.assignedState("default", "pod-a-default-id-a") === "Assigned", "first Assigned");
    h.pod("pod-b", { selector: "id-b", node: "node-0" });
    await until(() => h.assignedState("default", "pod-b-default-id-b") === "Assigned", "second Assigned after the throttle", 15_000);
    const patches = h.arm.calls.filter((c) => c.method === "PATCH");
    const throttled = patches.findIndex((c) => c.status === 429);
    expect(throttled).toBeGreaterThan(0);
    const retry = patches[throttled + 1]!;
    expect(retry.status).toBe(200);
    expect(retry.atMs - patches[throttled]!.atMs).toBeGreaterThanOrEqual(900);
    const metrics = await mic.metrics.registry.getSingleMetricAsString("podidentity_mic_arm_throttled_waits_total");
    expect(metrics).toMatch(/operation="vmss_update"} 1/);
  });

  it("stays inside its write budget without ever receiving a 429", async () => {
    h = await Harness.start({ arm: { resourceWriteLimit: { capacity: 1, refillPerMinute: 60 } } });
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    for (const n of ["id-a", "id-b", "id-c"]) {
      h.msiIdentity(n, h.identity(n));
      h.binding(n, n, n);
    }
    await h.startMic({ writeBudget: { capacity: 1, refillPerMinute: 60 } });
    for (const n of ["id-a", "id-b", "id-c"]) {
      h.pod(`pod-${n}`, { selector: n, node: "node-0" });
      await until(() => h.assignedState("default", `pod-${n}-default-${n}`) === "Assigned", `${n} Assigned`, 15_000);
    }
    expect(h.patches(vmss)).toBe(3);
    expect(h.arm.calls.filter((c) => c.status === 429)).toHaveLength(0);
  });
});

describe("150-entry chunking", () => {
  it("splits 160 additions into PATCHes of at most 150 entries", async () => {
    h = await Harness.start();
    const vm = h.vm("vm-0");
    h.node("vm-0", vm);
    for (let i = 0; i < 160; i++) {
      const name = `id-${String(i).padStart(3, "0")}`;
      h.msiIdentity(name, h.identity(name));
      h.binding(name, name, "web");
    }
    await h.startMic({ batchWindowMs: 300 });
    h.pod("web-1", { selector: "web", node: "vm-0" });
    await until(() => h.assigned().filter((a) => a.status?.status === "Assigned").length === 160, "160 Assigned", 20_000);
    const bodies = h.arm.calls.filter((c) => c.method === "PATCH").map((c) => Object.keys((c.body as { identity: { userAssignedIdentities?: object } }).identity.userAssignedIdentities ?? {}).length);
    expect(Math.max(...bodies)).toBeLessThanOrEqual(150);
    expect(bodies.reduce((a, b) => a + b, 0)).toBe(160);
    expect(h.held(vm)).toHaveLength(160);
  });
});

describe("a burst shares one PATCH", () => {
  it("pods arriving in waves while the first wait runs are all in the first PATCH; a lone pod waits only the window", async () => {
    h = await Harness.start();
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    for (let i = 0; i < 6; i++) {
      h.msiIdentity(`id-${i}`, h.identity(`id-${i}`));
      h.binding(`id-${i}`, `id-${i}`, `app-${i}`);
    }
    // Waves 40 ms apart: each falls inside the quiet step (400 ms), so MIC keeps waiting until they stop.
    await h.startMic({ batchWindowMs: 100, batchQuietMs: 400, batchMaxWaitMs: 10_000 });
    for (let i = 0; i < 5; i++) {
      h.pod(`web-${i}`, { selector: `app-${i}`, node: "node-0" });
      await new Promise((r) => setTimeout(r, 40));
    }
    await until(() => h.assigned().filter((a) => a.status?.status === "Assigned").length === 5, "5 Assigned", 20_000);
    expect(h.patches(vmss)).toBe(1);
    // Later, one pod on its own: one more PATCH, carrying just its identity.
    h.pod("web-5", { selector: "app-5", node: "node-0" });
    await until(() => h.assigned().filter((a) => a.status?.status === "Assigned").length === 6, "6 Assigned", 20_000);
    expect(h.patches(vmss)).toBe(2);
    expect(h.held(vmss)).toHaveLength(6);
  });
});

describe("releasing", () => {
  it("a pod that completes (Succeeded) releases its identity (v1.8 kept it until the pod was deleted)", async () => {
    h = await Harness.start();
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    h.msiIdentity("job-id", h.identity("job-id"));
    h.binding("job", "job-id", "job");
    h.pod("job-1", { selector: "job", node: "node-0" });
    await h.startMic();
    await until(() => h.assignedState("default", "job-1-default-job-id") === "Assigned", "Assigned");
    h.kube.patchObject("pods", "default", "job-1", { status: { phase: "Succeeded" } }, { subresource: "status" });
    await until(() => h.assigned().length === 0 && h.held(vmss).length === 0, "released");
  });

  it("deleting a node releases its pods' assignments and removes identities no other instance needs", async () => {
    h = await Harness.start();
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss, 0);
    h.node("node-1", vmss, 1);
    const shared = h.identity("shared");
    const only0 = h.identity("only-zero");
    h.msiIdentity("shared", shared);
    h.msiIdentity("only-zero", only0);
    h.binding("shared", "shared", "s");
    h.binding("only-zero", "only-zero", "z");
    h.pod("a", { selector: "s", node: "node-0" });
    h.pod("b", { selector: "z", node: "node-0" });
    h.pod("c", { selector: "s", node: "node-1" });
    await h.startMic();
    await until(() => h.assigned().filter((x) => x.status?.status === "Assigned").length === 3, "three Assigned");
    h.delete("nodes", undefined, "node-0");
    await until(() => h.assigned().length === 1 && h.held(vmss).join() === shared.id.toLowerCase(), "node-0's assignments released");
  });
});

describe("unbound and bound again", () => {
  it("while the identity's removal is in flight: the identity ends on the VMSS and Assigned, not Assigned without it", async () => {
    // Found by the convergence property (seed 1234129170): the removal the unbinding planned completed after the
    // rebinding's reconcile had found the object still Assigned, leaving it Assigned with the identity gone.
    h = await Harness.start({ arm: { operationDurationMs: 400 } });
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    const id = h.identity("kv-reader");
    h.msiIdentity("kv-reader", id);
    h.binding("kv", "kv-reader", "web");
    h.pod("web-1", { selector: "web", node: "node-0" });
    const mic = await h.startMic();
    await until(() => h.assignedState("default", "web-1-default-kv-reader") === "Assigned" && mic.quiescent, "Assigned");
    h.delete("azureidentitybindings.aadpodidentity.k8s.io", "default", "kv");
    // The last user-assigned identity goes with `type: "None"`; others with `null`.
    const removals = () => h.arm.calls.filter((c) => c.method === "PATCH" && /null|"None"/.test(JSON.stringify(c.body ?? {}))).length;
    await until(() => removals() === 1, "the removal PATCH sent");
    h.binding("kv", "kv-reader", "web");
    // quiescent: no ARM operation in flight, so this cannot pass while the removal is still running.
    await until(() => mic.quiescent && h.held(vmss).includes(id.id.toLowerCase()) && h.assignedState("default", "web-1-default-kv-reader") === "Assigned", "the identity back on the VMSS, Assigned");
    expect(h.held(vmss)).toEqual([id.id.toLowerCase()]);
  });
});

describe("restarts", () => {
  it("a MIC restarted mid-PATCH converges without leaking or wrongly removing an identity", async () => {
    h = await Harness.start({ arm: { operationDurationMs: 1_500 } });
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    const ours = h.identity("ours");
    const theirs = h.identity("theirs");
    // Hand-assigned before MIC ever ran; a pod binds it too.
    vmss.applyIdentityPatch({ type: "UserAssigned", userAssignedIdentities: { [theirs.id]: {} } }, h.cloud.registry, { effectiveAtMs: 0 });
    h.msiIdentity("ours", ours);
    h.msiIdentity("theirs", theirs);
    h.binding("ours", "ours", "web");
    h.binding("theirs", "theirs", "web");
    h.pod("web-1", { selector: "web", node: "node-0" });
    const first = await h.startMic();
    await until(() => h.patches(vmss) === 1, "the PATCH is in flight");
    await first.stop();
    expect(h.assignedState("default", "web-1-default-ours")).toBe("Created");
    const second = await h.startMic();
    await until(() => h.assigned().every((a) => a.status?.status === "Assigned") && h.assigned().length === 2, "both Assigned after the restart");
    const addedBy = Object.fromEntries(h.assigned().map((a) => [a.metadata.name, a.metadata.annotations?.["mic.podidentity.io/added-by"]]));
    expect(addedBy).toEqual({ "web-1-default-ours": "mic", "web-1-default-theirs": "pre-existing" });
    await second.stop();
    await h.startMic();
    h.delete("pods", "default", "web-1");
    await until(() => h.assigned().length === 0, "released");
    expect(h.held(vmss)).toEqual([theirs.id.toLowerCase()]);
  });
});

describe("IMDS and MIC agree", () => {
  it("IMDS issues a token for the pod's identity exactly once MIC says Assigned, not before the PATCH", async () => {
    h = await Harness.start({ arm: { operationDurationMs: 600, propagationDelayMs: 0 } });
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    const imds = await h.cloud.startImds("node-0", vmss, { requestsPerSecond: 10_000, maxConcurrent: 100 });
    const uai = h.identity("app");
    h.msiIdentity("app", uai);
    h.binding("app", "app", "web");
    const token = async (): Promise<number> => {
      const res = await fetch(`${imds.url}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net&client_id=${uai.clientId}`, { headers: { Metadata: "true" } });
      await res.text();
      return res.status;
    };
    expect(await token()).not.toBe(200);
    await h.startMic();
    h.pod("web-1", { selector: "web", node: "node-0" });
    const seen: Array<{ state: string | undefined; status: number; patched: boolean }> = [];
    await until(async () => {
      const state = h.assignedState("default", "web-1-default-app");
      const patched = h.patches(vmss) > 0;
      const status = await token();
      seen.push({ state, status, patched });
      return state === "Assigned";
    }, "Assigned");
    expect(await token()).toBe(200);
    // Before MIC sent its PATCH, IMDS never issued a token.
    expect(seen.filter((s) => !s.patched).every((s) => s.status !== 200)).toBe(true);
    expect(seen.some((s) => s.state === "Created" && s.status !== 200)).toBe(true);
  });
});
