import type { UserAssignedIdentity } from "@podidentity/testbed";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Nmi } from "../src/index";
import { Cluster, eventually } from "./helpers/cluster";

let c: Cluster;
let uai: UserAssignedIdentity;
const POD_IP = "127.0.12.1";
const AAI = "azureassignedidentities.aadpodidentity.k8s.io";

beforeEach(async () => {
  c = await Cluster.start();
  uai = c.cloud.createUserAssignedIdentity("kv-reader");
});
afterEach(async () => c.close());

const MIC_CLIENT = "d7586b94-0a56-43cc-b3f4-4e91d133fe67";
const ARM_MESSAGE =
  `The client '${MIC_CLIENT}' with object id '${MIC_CLIENT}' has permission to perform action 'Microsoft.Compute/virtualMachines/write'; however, it does not have ` +
  "permission to perform action 'Microsoft.ManagedIdentity/userAssignedIdentities/assign/action' on the linked scope(s) " +
  "'/subscriptions/be897230-b9c9-4a72-a711-3cd92b189e70/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/kv-reader' or the linked scope(s) are invalid.";

/** What MIC writes when ARM refuses the assignment for good: status.error beside status Created. */
function failAssignment(name: string, message = ARM_MESSAGE): void {
  c.kube.patchObject(AAI, "shop", name, { status: { error: { code: "LinkedAuthorizationFailed", message, lastTransitionTime: "2025-01-02T03:04:05Z" } } });
}

async function counter(nmi: Nmi, name: string, labels: Record<string, string>): Promise<number> {
  const text = await nmi.metrics.registry.metrics();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

describe("standard mode: MIC recorded ARM's refusal (status.error)", () => {
  it("answers 403 podidentity_assignment_failed at once with ARM's code and message, without holding the request", async () => {
    c.identity("shop", "kv-reader", uai, { selector: "web" });
    c.pod("web-1", POD_IP, { namespace: "shop", label: "web" });
    const name = c.assigned({ name: "web-1", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Created");
    failAssignment(name);
    // A hold far longer than the test: an answer at all proves it was not held.
    const nmi = await c.startNmi({ waitForAssignmentMs: 600_000 });
    await eventually(() => (nmi.readiness().ready ? true : undefined), "NMI ready");
    const r = await c.token(POD_IP);
    expect(r.status, r.text).toBe(403);
    expect(r.headers["x-podidentity-nmi"]).toBeDefined();
    expect(r.body.error).toBe("podidentity_assignment_failed");
    expect(r.body.error_description).toContain("MIC could not assign AzureIdentity shop/kv-reader (since 2025-01-02T03:04:05Z): ARM answered LinkedAuthorizationFailed: ");
    expect(r.body.error_description).toContain("userAssignedIdentities/assign/action");
    expect(r.body.error_description).toContain(`kubectl describe azureassignedidentity ${name} -n shop`);
    // MIC's client ID is not handed to the pod; the subscription inside the resource path stays readable.
    expect(r.text).not.toContain(MIC_CLIENT);
    expect(r.body.error_description).toContain("/subscriptions/be897230-b9c9-4a72-a711-3cd92b189e70/");
    expect(await counter(nmi, "podidentity_nmi_pending_waits_total", {})).toBe(0);
    expect(await counter(nmi, "podidentity_nmi_requests_total", { code: "podidentity_assignment_failed" })).toBe(1);
    expect(c.imds.counters.requests).toBe(0);
  });

  it("bounds ARM's message in the answer", async () => {
    c.identity("shop", "kv-reader", uai, { selector: "web" });
    c.pod("web-1", POD_IP, { namespace: "shop", label: "web" });
    const name = c.assigned({ name: "web-1", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Created");
    failAssignment(name, "x".repeat(5_000));
    await c.startNmi({ waitForAssignmentMs: 600_000 });
    const r = await c.token(POD_IP);
    expect(r.body.error).toBe("podidentity_assignment_failed");
    expect(r.body.error_description).toMatch(/x{599}…/);
    expect(r.body.error_description).not.toMatch(/x{601}/);
  });

  it("answers a request already held as soon as MIC records the refusal", async () => {
    c.identity("shop", "kv-reader", uai, { selector: "web" });
    c.pod("web-1", POD_IP, { namespace: "shop", label: "web" });
    const name = c.assigned({ name: "web-1", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Created");
    const nmi = await c.startNmi({ waitForAssignmentMs: 600_000 });
    const answer = c.token(POD_IP);
    await eventually(async () => ((await nmi.metrics.pendingInFlight.get()).values[0]?.value === 1 ? true : undefined), "the request held");
    failAssignment(name);
    const r = await answer;
    expect(r.status).toBe(403);
    expect(r.body.error).toBe("podidentity_assignment_failed");
    const waits = await nmi.metrics.pendingWaits.get();
    expect(waits.values.find((v) => v.labels["outcome"] === "refused")?.value).toBe(1);
  });

  it("waits instead when the refusal is for the AzureIdentity as it was before an edit, and serves once Assigned", async () => {
    const other = c.cloud.createUserAssignedIdentity("kv-writer");
    c.identity("shop", "kv-reader", uai, { selector: "web" });
    c.pod("web-1", POD_IP, { namespace: "shop", label: "web" });
    const name = c.assigned({ name: "web-1", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Created");
    failAssignment(name);
    // The user points the AzureIdentity at another identity; MIC has not replaced the failed object yet.
    c.kube.patchObject("azureidentities.aadpodidentity.k8s.io", "shop", "kv-reader", { spec: { resourceID: other.id, clientID: other.clientId } });
    const nmi = await c.startNmi({ waitForAssignmentMs: 600_000 });
    await eventually(() => (nmi.readiness().ready ? true : undefined), "NMI ready");
    const answer = c.token(POD_IP);
    await eventually(async () => ((await nmi.metrics.pendingInFlight.get()).values[0]?.value === 1 ? true : undefined), "the request held");
    // MIC replaces it: the new object for the new identity, Assigned, no error.
    c.kube.patchObject(AAI, "shop", name, { metadata: { finalizers: [] } });
    c.kube.deleteObject(AAI, "shop", name);
    await eventually(() => (c.kube.getObject(AAI, "shop", name) === undefined ? true : undefined), "old object gone");
    c.assigned({ name: "web-1", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Assigned");
    c.assignOnVm(other);
    const r = await answer;
    expect(r.status, r.text).toBe(200);
    expect(r.body.client_id).toBe(other.clientId);
  });
});

describe("managed mode: IMDS keeps answering 'Identity not found'", () => {
  it("holds as pending within the propagation grace, then answers 403 podidentity_assignment_failed at once; assigning the identity fixes the next request", async () => {
    let nowMs = Date.now();
    c.identity("shop", "kv-reader", uai, { selector: "web" });
    c.pod("web-1", POD_IP, { namespace: "shop", label: "web" });
    // Never assigned to the node's VM: IMDS answers 400 "Identity not found".
    const nmi = await c.startNmi({ operationMode: "managed", waitForAssignmentMs: 300, propagationGraceMs: 60_000, now: () => nowMs });
    const first = await c.token(POD_IP);
    expect(first.status, first.text).toBe(503);
    expect(first.body.error).toBe("podidentity_pending");

    nowMs += 60_000;
    const before = c.imds.counters.requests;
    const r = await c.token(POD_IP);
    expect(r.status, r.text).toBe(403);
    expect(r.body.error).toBe("podidentity_assignment_failed");
    expect(r.body.error_description).toContain('has answered "Identity not found" for AzureIdentity shop/kv-reader');
    expect(r.body.error_description).toContain("past the propagation grace");
    expect(r.body.error_description).toContain(uai.id);
    expect(r.text).not.toContain(uai.clientId);
    // One question to IMDS, no retries: the answer came at once.
    expect(c.imds.counters.requests - before).toBe(1);
    expect(await counter(nmi, "podidentity_nmi_requests_total", { code: "podidentity_assignment_failed" })).toBe(1);

    c.assignOnVm(uai);
    const fixed = await c.token(POD_IP);
    expect(fixed.status, fixed.text).toBe(200);
    expect(fixed.body.client_id).toBe(uai.clientId);
  });
});
