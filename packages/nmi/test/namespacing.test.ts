import { BEHAVIOR_ANNOTATION, DEFAULT_ASSIGNED_IDENTITY_NAMESPACE } from "@podidentity/api";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { UserAssignedIdentity } from "@podidentity/testbed";
import { Cluster } from "./helpers/cluster";

let c: Cluster;
let uai: UserAssignedIdentity;
const IP = "127.0.11.1";

beforeEach(async () => {
  c = await Cluster.start();
  uai = c.cloud.createUserAssignedIdentity("central");
  c.assignOnVm(uai);
});
afterEach(async () => c.close());

describe("namespaced matching (docs/contract.md: on by default)", () => {
  it("refuses an identity and binding from another namespace by default", async () => {
    c.identity("other", "central", uai, { selector: "web" });
    c.pod("web-1", IP, { namespace: "shop", label: "web" });
    await c.startNmi();
    const r = await c.token(IP);
    expect(r.status).toBe(403);
    expect(r.body.error).toBe("podidentity_no_binding");
    expect(r.body.error_description).toMatch(/namespaced/);
  });

  it("--force-namespaced=false restores v1.8's cross-namespace matching", async () => {
    c.identity("other", "central", uai, { selector: "web" });
    c.pod("web-1", IP, { namespace: "shop", label: "web" });
    // v1.8 keeps AzureAssignedIdentity objects of cluster-wide identities in `default`.
    c.assigned({ name: "web-1", namespace: "shop" }, { name: "central", namespace: "other" }, "Assigned", DEFAULT_ASSIGNED_IDENTITY_NAMESPACE);
    await c.startNmi({ forceNamespaced: false });
    const r = await c.token(IP);
    expect(r.status, r.text).toBe(200);
    expect(r.body.client_id).toBe(uai.clientId);
  });

  it("the Behavior: namespaced annotation keeps one identity namespaced under --force-namespaced=false", async () => {
    c.identity("other", "central", uai, { selector: "web", annotations: { [BEHAVIOR_ANNOTATION]: "Namespaced" } });
    c.pod("web-1", IP, { namespace: "shop", label: "web" });
    await c.startNmi({ forceNamespaced: false });
    expect((await c.token(IP)).body.error).toBe("podidentity_no_binding");
  });

  it("same-named identities and bindings in two namespaces: each pod gets its own namespace's", async () => {
    const second = c.cloud.createUserAssignedIdentity("ns2-identity");
    c.assignOnVm(second);
    c.identity("ns1", "id", uai, { selector: "app" });
    c.identity("ns2", "id", second, { selector: "app" });
    c.pod("app", "127.0.11.2", { namespace: "ns1", label: "app" });
    c.pod("app", "127.0.11.3", { namespace: "ns2", label: "app" });
    c.assigned({ name: "app", namespace: "ns1" }, { name: "id", namespace: "ns1" }, "Assigned");
    c.assigned({ name: "app", namespace: "ns2" }, { name: "id", namespace: "ns2" }, "Assigned");
    await c.startNmi();
    expect((await c.token("127.0.11.2")).body.client_id).toBe(uai.clientId);
    expect((await c.token("127.0.11.3")).body.client_id).toBe(second.clientId);
  });

  it("reads manifests written with v1.0's capitalised keys", async () => {
    c.identity("shop", "legacy", uai, { legacyKeys: true });
    c.kube.seed({ apiVersion: "aadpodidentity.k8s.io/v1", kind: "AzureIdentityBinding", metadata: { name: "legacy", namespace: "shop" }, spec: { AzureIdentity: "legacy", Selector: "old" } });
    c.pod("old", IP, { namespace: "shop", label: "old" });
    c.assigned({ name: "old", namespace: "shop" }, { name: "legacy", namespace: "shop" }, "Assigned");
    await c.startNmi();
    const r = await c.token(IP);
    expect(r.status, r.text).toBe(200);
    expect(r.body.client_id).toBe(uai.clientId);
  });
});

describe("managed mode", () => {
  it("serves bindings and identities of the pod's namespace without AzureAssignedIdentity objects", async () => {
    c.identity("shop", "central", uai, { selector: "web" });
    c.pod("web-1", IP, { namespace: "shop", label: "web" });
    await c.startNmi({ operationMode: "managed" });
    const r = await c.token(IP);
    expect(r.status, r.text).toBe(200);
    expect(r.body.client_id).toBe(uai.clientId);
    expect(c.kube.countRequests({ resource: "azureassignedidentities" })).toBe(0);
  });

  it("refuses a pod without binding (403) and an identity it is not bound to (403)", async () => {
    c.identity("shop", "central", uai, { selector: "web" });
    c.pod("web-1", IP, { namespace: "shop", label: "web" });
    c.pod("api-1", "127.0.11.9", { namespace: "shop", label: "api" });
    await c.startNmi({ operationMode: "managed" });
    expect((await c.token("127.0.11.9")).body.error).toBe("podidentity_no_binding");
    expect((await c.token(IP, { resource: "https://vault.azure.net", client_id: "11111111-2222-3333-4444-555555555555" })).body.error).toBe("podidentity_not_bound");
  });

  it("refuses to start managed mode without namespaced matching, as v1.8", async () => {
    await expect(c.startNmi({ operationMode: "managed", forceNamespaced: false })).rejects.toThrow(/managed requires forceNamespaced/);
  });
});
