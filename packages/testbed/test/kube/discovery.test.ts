import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { KubeApiServer } from "../../src/kube/kube-api-server";
import { api, startServer } from "./helpers/api";
import { azureIdentityCrd, CRD_URL } from "./helpers/crd";

let server: KubeApiServer;
beforeEach(async () => {
  server = await startServer({ kubernetesVersion: "v1.31.4" });
});
afterEach(async () => server.close());

describe("discovery", () => {
  it("reports the configured Kubernetes version", async () => {
    const r = await api(server, "GET", "/version?timeout=5s");
    expect(r.body).toMatchObject({ major: "1", minor: "31", gitVersion: "v1.31.4" });
  });

  it("lists the core group and its resources with verbs, short names, scope and subresources", async () => {
    expect((await api(server, "GET", "/api")).body).toMatchObject({ kind: "APIVersions", versions: ["v1"] });
    const v1 = (await api(server, "GET", "/api/v1")).body;
    expect(v1).toMatchObject({ kind: "APIResourceList", groupVersion: "v1" });
    const byName = new Map(v1.resources.map((r: { name: string }) => [r.name, r]));
    expect(byName.get("pods")).toMatchObject({ singularName: "pod", namespaced: true, kind: "Pod", shortNames: ["po"], verbs: ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"] });
    expect(byName.get("pods/status")).toMatchObject({ verbs: ["get", "patch", "update"] });
    expect(byName.get("namespaces")).toMatchObject({ namespaced: false, shortNames: ["ns"] });
    for (const r of ["nodes", "secrets", "configmaps", "events", "serviceaccounts", "services"]) expect(byName.has(r), r).toBe(true);
  });

  it("lists the groups with preferred versions, including stored-only ones", async () => {
    const groups = (await api(server, "GET", "/apis")).body;
    expect(groups.kind).toBe("APIGroupList");
    const names = groups.groups.map((g: { name: string }) => g.name).sort();
    expect(names).toEqual(["apiextensions.k8s.io", "apps", "authentication.k8s.io", "authorization.k8s.io", "coordination.k8s.io", "policy", "rbac.authorization.k8s.io", "scheduling.k8s.io"]);
    const coordination = groups.groups.find((g: { name: string }) => g.name === "coordination.k8s.io");
    expect(coordination.preferredVersion).toEqual({ groupVersion: "coordination.k8s.io/v1", version: "v1" });
    const rbac = (await api(server, "GET", "/apis/rbac.authorization.k8s.io/v1")).body;
    expect(rbac.resources.map((r: { name: string }) => r.name)).toEqual(["roles", "rolebindings", "clusterroles", "clusterrolebindings"]);
    expect((await api(server, "GET", "/apis/apps")).body).toMatchObject({ kind: "APIGroup", name: "apps" });
  });

  it("adds a CRD's group, resource and OpenAPI document once it is established", async () => {
    const before = (await api(server, "GET", "/openapi/v3")).body;
    expect(before.paths["apis/aadpodidentity.k8s.io/v1"]).toBeUndefined();
    expect((await api(server, "GET", "/apis/aadpodidentity.k8s.io/v1")).status).toBe(404);
    await api(server, "POST", CRD_URL, azureIdentityCrd());
    const list = (await api(server, "GET", "/apis/aadpodidentity.k8s.io/v1")).body;
    expect(list.resources).toContainEqual(expect.objectContaining({ name: "azureidentities", kind: "AzureIdentity", namespaced: true, shortNames: ["azid"] }));
    const index = (await api(server, "GET", "/openapi/v3")).body;
    const entry = index.paths["apis/aadpodidentity.k8s.io/v1"];
    expect(entry.serverRelativeURL).toMatch(/^\/openapi\/v3\/apis\/aadpodidentity\.k8s\.io\/v1\?hash=[0-9A-F]+$/);
    const doc = (await api(server, "GET", entry.serverRelativeURL)).body;
    const patch = doc.paths["/apis/aadpodidentity.k8s.io/v1/namespaces/{namespace}/azureidentities/{name}"].patch;
    expect(patch["x-kubernetes-group-version-kind"]).toEqual({ group: "aadpodidentity.k8s.io", version: "v1", kind: "AzureIdentity" });
    expect(patch.parameters.map((p: { name: string }) => p.name)).toContain("fieldValidation");
    expect(Object.keys(patch.requestBody.content)).not.toContain("application/strategic-merge-patch+json");
    expect(doc.components.schemas["io.k8s.aadpodidentity.v1.AzureIdentity"].properties.spec.properties.ResourceID).toEqual({ type: "string" });
  });

  it("offers strategic merge patch in the OpenAPI of built-in types", async () => {
    const doc = (await api(server, "GET", "/openapi/v3/api/v1")).body;
    const patch = doc.paths["/api/v1/namespaces/{namespace}/pods/{name}"].patch;
    expect(Object.keys(patch.requestBody.content)).toContain("application/strategic-merge-patch+json");
    expect(doc.paths["/api/v1/namespaces/{namespace}/pods/{name}/status"]).toBeDefined();
    expect((await api(server, "GET", "/openapi/v3/apis/nothing/v1")).status).toBe(404);
  });
});
