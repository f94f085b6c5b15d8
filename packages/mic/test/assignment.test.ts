import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Harness, until } from "./helpers/harness";

// v1.8 e2e scenarios (reference/aad-pod-identity.md §9) that concern MIC, against the testbed.

let h: Harness;
beforeEach(async () => {
  h = await Harness.start();
});
afterEach(async () => {
  await h.close();
});

const AAI = "azureassignedidentities.aadpodidentity.k8s.io";

describe("single_identity", () => {
  it("assigns the pod's identity to its scale set, marks it Assigned, and pod deletion releases it", async () => {
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss, 0);
    const uai = h.identity("kv-reader");
    h.msiIdentity("kv-reader", uai);
    h.binding("kv-reader-binding", "kv-reader", "web");
    h.pod("web-1", { selector: "web", node: "node-0" });
    await h.startMic();
    await until(() => h.assignedState("default", "web-1-default-kv-reader") === "Assigned", "Assigned");
    expect(h.held(vmss)).toEqual([uai.id.toLowerCase()]);
    const aai = h.assigned()[0]!;
    expect(aai.metadata.labels?.["nodename"]).toBe("node-0");
    expect(aai.metadata.finalizers).toContain("azureassignedidentity.finalizers.aadpodidentity.k8s.io");
    expect(aai.metadata.annotations?.["mic.podidentity.io/added-by"]).toBe("mic");
    await until(() => h.events({ reason: "binding applied", kind: "Pod", name: "web-1" }).length === 1, "binding applied event on the pod");
    expect(h.events({ reason: "binding applied", kind: "AzureIdentityBinding" })).toHaveLength(1);
    const replicas = (resource: string, name: string): number | undefined =>
      (h.kube.getObject(`${resource}.aadpodidentity.k8s.io`, "default", name) as { status?: { availableReplicas?: number } }).status?.availableReplicas;
    await until(() => replicas("azureidentities", "kv-reader") === 1 && replicas("azureidentitybindings", "kv-reader-binding") === 1, "status.availableReplicas = 1");

    h.delete("pods", "default", "web-1");
    await until(() => h.assigned().length === 0, "AzureAssignedIdentity deleted");
    expect(h.held(vmss)).toEqual([]);
    expect(vmss.identityType).toBe("None");
    await until(() => replicas("azureidentities", "kv-reader") === 0, "status.availableReplicas back to 0");
  });

  it("deleting the identity or the binding releases the assignment", async () => {
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    const uai = h.identity("id-a");
    h.msiIdentity("id-a", uai);
    h.binding("b-a", "id-a", "web");
    h.pod("web-1", { selector: "web", node: "node-0" });
    await h.startMic();
    await until(() => h.assignedState("default", "web-1-default-id-a") === "Assigned", "Assigned");
    h.delete("azureidentitybindings.aadpodidentity.k8s.io", "default", "b-a");
    await until(() => h.assigned().length === 0 && h.held(vmss).length === 0, "released after binding deletion");
    h.binding("b-a", "id-a", "web");
    await until(() => h.assignedState("default", "web-1-default-id-a") === "Assigned", "Assigned again");
    h.delete("azureidentities.aadpodidentity.k8s.io", "default", "id-a");
    await until(() => h.assigned().length === 0 && h.held(vmss).length === 0, "released after identity deletion");
  });

  it("pointing the AzureIdentity at another MSI moves the assignment to it", async () => {
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    const first = h.identity("first");
    const second = h.identity("second");
    h.msiIdentity("app", first);
    h.binding("app", "app", "web");
    h.pod("web-1", { selector: "web", node: "node-0" });
    await h.startMic();
    await until(() => h.assignedState("default", "web-1-default-app") === "Assigned", "Assigned");
    h.kube.patchObject("azureidentities.aadpodidentity.k8s.io", "default", "app", { spec: { resourceID: second.id, clientID: second.clientId } });
    await until(() => h.held(vmss).join() === second.id.toLowerCase() && h.assignedState("default", "web-1-default-app") === "Assigned", "moved to the second MSI");
    const aai = h.assigned()[0] as unknown as { spec: { azureIdentityRef: { spec: { clientID: string } } } };
    expect(aai.spec.azureIdentityRef.spec.clientID).toBe(second.clientId);
  });

  it("a pod with two identities gets both, in one PATCH", async () => {
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    for (const name of ["id-1", "id-2"]) {
      h.msiIdentity(name, h.identity(name));
      h.binding(name, name, "web");
    }
    h.pod("web-1", { selector: "web", node: "node-0" });
    await h.startMic();
    await until(() => h.assigned().filter((a) => a.status?.status === "Assigned").length === 2, "both Assigned");
    expect(h.held(vmss)).toHaveLength(2);
    expect(h.patches(vmss)).toBe(1);
  });
});

describe("multiple_identities", () => {
  it("deleting identities one by one drops their assignments while the rest stay Assigned", async () => {
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    const names = ["mid-1", "mid-2", "mid-3", "mid-4", "mid-5"];
    for (const name of names) {
      h.msiIdentity(name, h.identity(name));
      h.binding(name, name, "web");
    }
    h.pod("web-1", { selector: "web", node: "node-0" });
    await h.startMic();
    await until(() => h.assigned().filter((a) => a.status?.status === "Assigned").length === 5, "five Assigned");
    for (const [i, name] of ["mid-3", "mid-1", "mid-5", "mid-2", "mid-4"].entries()) {
      h.delete("azureidentities.aadpodidentity.k8s.io", "default", name);
      await until(() => h.assigned().length === 4 - i && h.held(vmss).length === 4 - i, `${4 - i} left`);
      expect(h.assigned().every((a) => a.status?.status === "Assigned")).toBe(true);
    }
  });

  it("40 pods on two nodes reach Assigned", async () => {
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss, 0);
    h.node("node-1", vmss, 1);
    for (let i = 0; i < 5; i++) {
      h.msiIdentity(`id-${i}`, h.identity(`id-${i}`));
      h.binding(`b-${i}`, `id-${i}`, `app-${i}`);
    }
    await h.startMic();
    for (let p = 0; p < 40; p++) h.pod(`pod-${p}`, { selector: `app-${p % 5}`, node: `node-${p % 2}` });
    await until(() => h.assigned().filter((a) => a.status?.status === "Assigned").length === 40, "40 Assigned", 15_000);
    expect(h.held(vmss)).toHaveLength(5);
    expect(h.patches(vmss)).toBeLessThanOrEqual(3);
  });

  it("relabelling a pod switches it to the other identity", async () => {
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    const a = h.identity("id-a");
    const b = h.identity("id-b");
    h.msiIdentity("id-a", a);
    h.msiIdentity("id-b", b);
    h.binding("b-a", "id-a", "sel-a");
    h.binding("b-b", "id-b", "sel-b");
    h.pod("web-1", { selector: "sel-a", node: "node-0" });
    await h.startMic();
    await until(() => h.assignedState("default", "web-1-default-id-a") === "Assigned", "id-a Assigned");
    h.kube.patchObject("pods", "default", "web-1", { metadata: { labels: { aadpodidbinding: "sel-b" } } });
    await until(
      () => h.assignedState("default", "web-1-default-id-b") === "Assigned" && h.assignedState("default", "web-1-default-id-a") === undefined && h.held(vmss).join() === b.id.toLowerCase(),
      "switched to id-b",
    );
  });
});

describe("invalid_identities", () => {
  it("assigns the valid identity of a mixed batch; the missing ones stay Created with a Warning event", async () => {
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    const valid = h.identity("valid");
    h.msiIdentity("valid", valid);
    h.binding("valid", "valid", "web");
    for (const ghost of ["ghost-1", "ghost-2"]) {
      const id = `/subscriptions/${h.cloud.subscriptionId}/resourcegroups/${h.cloud.resourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${ghost}`;
      h.azureIdentity(ghost, { type: 0, resourceID: id, clientID: "00000000-0000-0000-0000-00000000dead" });
      h.binding(ghost, ghost, "web");
    }
    h.pod("web-1", { selector: "web", node: "node-0" });
    const mic = await h.startMic();
    await until(() => h.assignedState("default", "web-1-default-valid") === "Assigned", "valid Assigned");
    await until(() => h.events({ reason: "binding apply error", kind: "Pod" }).length >= 1, "Warning on the pod");
    expect(h.assignedState("default", "web-1-default-ghost-1")).toBe("Created");
    expect(h.assignedState("default", "web-1-default-ghost-2")).toBe("Created");
    expect(h.events({ reason: "binding apply error", kind: "AzureIdentityBinding" }).length).toBeGreaterThanOrEqual(1);
    // A later invalid assignment does not unassign the valid one.
    h.pod("web-2", { selector: "web", node: "node-0" });
    await until(() => h.assignedState("default", "web-2-default-valid") === "Assigned", "second pod's valid Assigned");
    expect(h.held(vmss)).toEqual([valid.id.toLowerCase()]);
    expect(mic.isLeader).toBe(true);
  });

  it("a malformed resourceID or a binding naming a missing identity gets a Warning event and blocks nothing", async () => {
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    h.azureIdentity("bad", { type: 0, resourceID: "not-a-resource-id", clientID: "c" });
    h.binding("bad", "bad", "web");
    h.binding("missing", "nope", "web");
    const good = h.identity("good");
    h.msiIdentity("good", good);
    h.binding("good", "good", "web");
    h.pod("web-1", { selector: "web", node: "node-0" });
    await h.startMic();
    await until(() => h.assignedState("default", "web-1-default-good") === "Assigned", "good Assigned");
    expect(h.assigned()).toHaveLength(1);
    await until(() => h.events({ kind: "AzureIdentity", name: "bad" }).some((e) => e.type === "Warning"), "Warning on the bad identity");
    await until(() => h.events({ kind: "Pod", reason: "binding apply error" }).some((e) => /nope/.test(e.message)), "Warning naming the missing identity");
  });
});

describe("node", () => {
  it("keeps an identity another pod on another instance of the scale set still uses", async () => {
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss, 0);
    h.node("node-1", vmss, 1);
    h.msiIdentity("shared", h.identity("shared"));
    h.binding("shared", "shared", "web");
    h.pod("web-0", { selector: "web", node: "node-0" });
    h.pod("web-1", { selector: "web", node: "node-1" });
    await h.startMic();
    await until(() => h.assigned().filter((a) => a.status?.status === "Assigned").length === 2, "both Assigned");
    h.delete("pods", "default", "web-0");
    await until(() => h.assigned().length === 1, "one left");
    expect(h.held(vmss)).toHaveLength(1);
    h.delete("pods", "default", "web-1");
    await until(() => h.assigned().length === 0 && h.held(vmss).length === 0, "removed once unused");
  });

  it("an identity removed by hand before the pod is deleted still lets the object be deleted; the system identity is untouched", async () => {
    const vm = h.vm("vm-0");
    h.node("vm-0", vm);
    const uai = h.identity("app");
    h.msiIdentity("app", uai);
    h.binding("app", "app", "web");
    // A system-assigned identity already on the VM.
    vm.applyIdentityPatch({ type: "SystemAssigned" }, h.cloud.registry, { effectiveAtMs: 0 });
    const principalId = vm.systemAssigned!.principalId;
    h.pod("web-1", { selector: "web", node: "vm-0" });
    await h.startMic();
    await until(() => h.assignedState("default", "web-1-default-app") === "Assigned", "Assigned");
    expect(vm.identityType).toBe("SystemAssigned, UserAssigned");
    vm.applyIdentityPatch({ type: "SystemAssigned" }, h.cloud.registry, { effectiveAtMs: 0 });
    h.delete("pods", "default", "web-1");
    await until(() => h.assigned().length === 0, "deleted");
    expect(vm.systemAssigned?.principalId).toBe(principalId);
  });

  it("never removes an identity someone else assigned, even when a pod also used it", async () => {
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    const manual = h.identity("manual");
    vmss.applyIdentityPatch({ type: "UserAssigned", userAssignedIdentities: { [manual.id]: {} } }, h.cloud.registry, { effectiveAtMs: 0 });
    h.msiIdentity("manual", manual);
    h.binding("manual", "manual", "web");
    h.pod("web-1", { selector: "web", node: "node-0" });
    await h.startMic();
    await until(() => h.assignedState("default", "web-1-default-manual") === "Assigned", "Assigned");
    expect(h.patches()).toBe(0);
    expect(h.assigned()[0]!.metadata.annotations?.["mic.podidentity.io/added-by"]).toBe("pre-existing");
    h.delete("pods", "default", "web-1");
    await until(() => h.assigned().length === 0, "deleted");
    expect(h.held(vmss)).toEqual([manual.id.toLowerCase()]);
  });

  it("keeps immutable identities (--immutable-user-msis, by client ID)", async () => {
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    const pinned = h.identity("pinned");
    h.msiIdentity("pinned", pinned);
    h.binding("pinned", "pinned", "web");
    h.pod("web-1", { selector: "web", node: "node-0" });
    await h.startMic({ immutableUserMsis: [pinned.clientId.toUpperCase()] });
    await until(() => h.assignedState("default", "web-1-default-pinned") === "Assigned", "Assigned");
    h.delete("pods", "default", "web-1");
    await until(() => h.assigned().length === 0, "deleted");
    expect(h.held(vmss)).toEqual([pinned.id.toLowerCase()]);
  });

  it("re-assigns an identity removed by hand while the pod runs (drift repair)", async () => {
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    const uai = h.identity("app");
    h.msiIdentity("app", uai);
    h.binding("app", "app", "web");
    h.pod("web-1", { selector: "web", node: "node-0" });
    await h.startMic({ identityAssignmentReconcileIntervalMs: 300 });
    await until(() => h.assignedState("default", "web-1-default-app") === "Assigned", "Assigned");
    vmss.applyIdentityPatch({ type: "None" }, h.cloud.registry, { effectiveAtMs: 0 });
    expect(h.held(vmss)).toEqual([]);
    await until(() => h.held(vmss).length === 1, "re-added by drift repair");
  });

  it("repairs an identity deleted and re-created in Azure (null client ID) and warns about a stale clientID", async () => {
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    const uai = h.identity("app");
    h.msiIdentity("app", uai);
    h.binding("app", "app", "web");
    h.pod("web-1", { selector: "web", node: "node-0" });
    const mic = await h.startMic({ identityAssignmentReconcileIntervalMs: 60_000 });
    await until(() => h.assignedState("default", "web-1-default-app") === "Assigned", "Assigned");
    h.cloud.deleteUserAssignedIdentity(uai);
    const recreated = h.identity("app");
    expect(recreated.clientId).not.toBe(uai.clientId);
    const patchesBefore = h.patches(vmss);
    mic.driftRepairNow();
    await until(() => vmss.userAssigned.get(uai.id.toLowerCase())?.clientId === recreated.clientId, "re-added with the new client ID");
    expect(h.patches(vmss) - patchesBefore).toBe(2);
    mic.driftRepairNow();
    await until(() => h.events({ reason: "ClientIDMismatch", kind: "AzureIdentity" }).length === 1, "Warning about the stale clientID");
  });
});

describe("service_principal", () => {
  it("a type-1 identity is Assigned without any ARM call", async () => {
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    h.azureIdentity("sp", { type: 1, tenantID: h.cloud.tenantId, clientID: "11111111-1111-1111-1111-111111111111", clientPassword: { name: "sp-secret", namespace: "default" } });
    h.binding("sp", "sp", "web");
    h.pod("web-1", { selector: "web", node: "node-0" });
    await h.startMic();
    await until(() => h.assignedState("default", "web-1-default-sp") === "Assigned", "Assigned");
    expect(h.arm.calls.filter((c) => c.path.includes("Microsoft.Compute"))).toHaveLength(0);
  });
});

describe("name_conflict", () => {
  it("same-named identity and binding in two namespaces: the pod gets its own namespace's", async () => {
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    for (const ns of ["ns1", "ns2"]) {
      h.kube.seed({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
      h.msiIdentity("app", h.identity(`app-${ns}`), ns);
      h.binding("app", "app", "web", ns);
    }
    h.pod("web-1", { selector: "web", node: "node-0", namespace: "ns1" });
    await h.startMic();
    await until(() => h.assignedState("ns1", "web-1-ns1-app") === "Assigned", "Assigned in ns1");
    const aai = h.kube.getObject(AAI, "ns1", "web-1-ns1-app") as unknown as { spec: { azureIdentityRef: { spec: { resourceID: string } } } };
    // (The testbed prunes the embedded refs' metadata, unlike kube-apiserver; the resource ID tells them apart.)
    expect(aai.spec.azureIdentityRef.spec.resourceID).toMatch(/app-ns1$/);
    expect(h.held(vmss)).toEqual([aai.spec.azureIdentityRef.spec.resourceID.toLowerCase()]);
    expect(h.assigned()).toHaveLength(1);
  });
});
