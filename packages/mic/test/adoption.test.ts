import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Harness, until } from "./helpers/harness";

let h: Harness;
beforeEach(async () => {
  h = await Harness.start();
});
afterEach(async () => {
  await h.close();
});

describe("adopting aad-pod-identity v1.8's objects", () => {
  it("keeps a v1.8 Assigned object without a PATCH and, as MIC-added, removes its identity when the pod goes", async () => {
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    const uai = h.identity("legacy-id");
    // What v1.8 left behind: the identity on the scale set and an Assigned object without our annotations.
    vmss.applyIdentityPatch({ type: "UserAssigned", userAssignedIdentities: { [uai.id]: {} } }, h.cloud.registry, { effectiveAtMs: 0 });
    h.msiIdentity("legacy-id", uai);
    h.binding("legacy-binding", "legacy-id", "web");
    h.pod("web-1", { selector: "web", node: "node-0" });
    h.kube.seed({
      apiVersion: "aadpodidentity.k8s.io/v1",
      kind: "AzureAssignedIdentity",
      metadata: { name: "web-1-default-legacy-id", namespace: "default", labels: { nodename: "node-0" }, finalizers: ["azureassignedidentity.finalizers.aadpodidentity.k8s.io"] },
      spec: {
        // Pre-1.6 MIC wrote lower-case keys; normalisation reads them.
        azureidentityref: { apiVersion: "aadpodidentity.k8s.io/v1", kind: "AzureIdentity", metadata: { name: "legacy-id", namespace: "default" }, spec: { type: 0, ResourceID: uai.id, ClientID: uai.clientId } },
        azurebindingref: { apiVersion: "aadpodidentity.k8s.io/v1", kind: "AzureIdentityBinding", metadata: { name: "legacy-binding", namespace: "default" }, spec: { azureIdentity: "legacy-id", selector: "web" } },
        pod: "web-1",
        podnamespace: "default",
        nodename: "node-0",
      },
      status: { status: "Assigned", availableReplicas: 1 },
    });
    const mic = await h.startMic();
    await until(() => h.assigned()[0]?.metadata.annotations?.["mic.podidentity.io/compute-resource"] !== undefined, "adopted");
    expect(h.assignedState("default", "web-1-default-legacy-id")).toBe("Assigned");
    expect(h.assigned()).toHaveLength(1);
    expect(h.patches()).toBe(0);
    h.delete("pods", "default", "web-1");
    await until(() => h.assigned().length === 0 && h.held(vmss).length === 0, "released and removed");
    expect(mic.isLeader).toBe(true);
  });
});

describe("informers", () => {
  it("relist after the API server forgets their resourceVersion (410) and keep assigning", async () => {
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    h.msiIdentity("app", h.identity("app"));
    h.binding("app", "app", "web");
    await h.startMic();
    h.kube.compactHistory();
    h.kube.dropWatches({ abrupt: true });
    h.pod("web-1", { selector: "web", node: "node-0" });
    await until(() => h.assignedState("default", "web-1-default-app") === "Assigned", "Assigned after the relist", 15_000);
  });
});
