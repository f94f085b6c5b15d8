import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { KubeApiServer } from "../../src/kube/kube-api-server";
import { api, eventually, startServer } from "./helpers/api";
import { AZID_URL, azureIdentity, azureIdentityCrd, CRD_URL } from "./helpers/crd";

let server: KubeApiServer;
beforeEach(async () => {
  server = await startServer();
});
afterEach(async () => server.close());

describe("custom resource definitions", () => {
  it("are not served before the CRD exists and are served once it is established", async () => {
    expect((await api(server, "GET", AZID_URL)).status).toBe(404);
    const created = await api(server, "POST", CRD_URL, azureIdentityCrd());
    expect(created.status).toBe(201);
    const crd = await api(server, "GET", `${CRD_URL}/azureidentities.aadpodidentity.k8s.io`);
    expect(crd.body.status.conditions.map((c: { type: string; status: string }) => [c.type, c.status])).toEqual([
      ["NamesAccepted", "True"],
      ["Established", "True"],
    ]);
    expect(crd.body.status.acceptedNames).toMatchObject({ kind: "AzureIdentity", plural: "azureidentities", shortNames: ["azid"] });
    expect(crd.body.status.storedVersions).toEqual(["v1"]);
    expect((await api(server, "GET", AZID_URL)).body).toMatchObject({ kind: "AzureIdentityList", apiVersion: "aadpodidentity.k8s.io/v1", items: [] });
  });

  it("requires kind and apiVersion in a custom resource (no defaulting from the URL, unlike built-ins)", async () => {
    await api(server, "POST", CRD_URL, azureIdentityCrd());
    const noKind = await api(server, "POST", AZID_URL, { apiVersion: "aadpodidentity.k8s.io/v1", metadata: { name: "x" }, spec: { type: 0 } });
    expect(noKind.status).toBe(400);
    expect(noKind.body.message).toContain("Object 'Kind' is missing");
  });

  it("refuses a CRD in a protected group (*.k8s.io) without the api-approved.kubernetes.io annotation", async () => {
    const crd = azureIdentityCrd();
    const r = await api(server, "POST", CRD_URL, { ...crd, metadata: { name: crd.metadata.name } });
    expect(r.status).toBe(422);
    expect(r.body.details.causes).toEqual([expect.objectContaining({ reason: "FieldValueRequired", field: "metadata.annotations[api-approved.kubernetes.io]" })]);
    const bad = await api(server, "POST", CRD_URL, { ...crd, metadata: { name: crd.metadata.name, annotations: { "api-approved.kubernetes.io": "yes" } } });
    expect(bad.status).toBe(422);
    expect((await api(server, "POST", CRD_URL, crd)).status).toBe(201);
  });

  it("prunes undeclared fields, keeps declared capitalised legacy keys, applies defaults", async () => {
    await api(server, "POST", CRD_URL, azureIdentityCrd());
    const r = await api(server, "POST", AZID_URL, azureIdentity("id", { type: 0, ResourceID: "/subscriptions/s/rg/x", ClientID: "c-1", clientId: "wrong-case", extra: { nested: true } }, { topLevel: "dropped" }));
    expect(r.status).toBe(201);
    expect(r.body.spec).toEqual({ type: 0, ResourceID: "/subscriptions/s/rg/x", ClientID: "c-1", replicas: 1 });
    expect(r.body.topLevel).toBeUndefined();
    expect(r.headers.get("warning")).toContain('unknown field \\"spec.clientId\\"');
    const stored = server.getObject("azureidentities.aadpodidentity.k8s.io", "default", "id");
    expect(stored?.["spec"]).toEqual(r.body.spec);
  });

  it("rejects unknown fields with fieldValidation=Strict and drops them silently with Ignore", async () => {
    await api(server, "POST", CRD_URL, azureIdentityCrd());
    const strict = await api(server, "POST", `${AZID_URL}?fieldValidation=Strict`, azureIdentity("s", { type: 0, bogus: 1 }));
    expect(strict.status).toBe(400);
    expect(strict.body.message).toContain('strict decoding error: unknown field "spec.bogus"');
    const ignore = await api(server, "POST", `${AZID_URL}?fieldValidation=Ignore`, azureIdentity("i", { type: 0, bogus: 1 }));
    expect(ignore.status).toBe(201);
    expect(ignore.headers.get("warning")).toBeNull();
  });

  it("validates against the schema with 422 Invalid", async () => {
    await api(server, "POST", CRD_URL, azureIdentityCrd());
    const wrongType = await api(server, "POST", AZID_URL, azureIdentity("t", { type: "zero" }));
    expect(wrongType.status).toBe(422);
    expect(wrongType.body.details.causes[0]).toMatchObject({ reason: "FieldValueTypeInvalid", field: "spec.type" });
    const notInEnum = await api(server, "POST", AZID_URL, azureIdentity("e", { type: 7 }));
    expect(notInEnum.status).toBe(422);
    expect(notInEnum.body.details.causes[0]).toMatchObject({ reason: "FieldValueNotSupported", field: "spec.type" });
  });

  it("separates the status subresource of custom resources", async () => {
    await api(server, "POST", CRD_URL, azureIdentityCrd());
    const created = await api(server, "POST", AZID_URL, azureIdentity("s", { type: 0 }, { status: { state: "ignored" } }));
    expect(created.body.status).toBeUndefined();
    const status = await api(server, "PUT", `${AZID_URL}/s/status`, { ...created.body, spec: { type: 1 }, status: { state: "Assigned" } });
    expect(status.body.spec.type).toBe(0);
    expect(status.body.status).toEqual({ state: "Assigned" });
    expect(status.body.metadata.generation).toBe(1);
    const main = await api(server, "PUT", `${AZID_URL}/s`, { ...status.body, spec: { type: 1 }, status: { state: "Lost" } });
    expect(main.body.status).toEqual({ state: "Assigned" });
    expect(main.body.metadata.generation).toBe(2);
  });

  it("refuses strategic merge patch on custom resources (415) and accepts merge patch", async () => {
    await api(server, "POST", CRD_URL, azureIdentityCrd());
    await api(server, "POST", AZID_URL, azureIdentity("p", { type: 0 }));
    const smp = await api(server, "PATCH", `${AZID_URL}/p`, { spec: { clientID: "x" } }, { "content-type": "application/strategic-merge-patch+json" });
    expect(smp.status).toBe(415);
    const mp = await api(server, "PATCH", `${AZID_URL}/p`, { spec: { clientID: "x" } }, { "content-type": "application/merge-patch+json" });
    expect(mp.body.spec.clientID).toBe("x");
  });

  it("rejects invalid CRDs with 422", async () => {
    const crd = azureIdentityCrd();
    crd.metadata.name = "wrong.name";
    const r = await api(server, "POST", CRD_URL, crd);
    expect(r.status).toBe(422);
    expect(r.body.message).toContain('must be spec.names.plural+"."+spec.group');
    const noSchema = azureIdentityCrd() as { spec: { versions: Array<Record<string, unknown>> } };
    delete noSchema.spec.versions[0]?.["schema"];
    const r2 = await api(server, "POST", CRD_URL, noSchema);
    expect(r2.status).toBe(422);
    expect(r2.body.details.causes[0].field).toBe("spec.versions[0].schema.openAPIV3Schema");
  });

  it("deletes the custom resources with their CRD and stops serving them", async () => {
    await api(server, "POST", CRD_URL, azureIdentityCrd());
    await api(server, "POST", AZID_URL, azureIdentity("a", { type: 0 }));
    const del = await api(server, "DELETE", `${CRD_URL}/azureidentities.aadpodidentity.k8s.io`);
    expect(del.status).toBe(200);
    await eventually(async () => ((await api(server, "GET", `${CRD_URL}/azureidentities.aadpodidentity.k8s.io`)).status === 404 ? true : undefined), "CRD removed");
    expect(server.history("azureidentities.aadpodidentity.k8s.io").map((e) => e.type)).toEqual(["ADDED", "DELETED"]);
    expect((await api(server, "GET", AZID_URL)).status).toBe(404);
  });

  it("keeps an embedded resource's apiVersion, kind and ObjectMeta even when its schema declares metadata as a bare object", async () => {
    // AzureAssignedIdentity embeds whole AzureIdentity/AzureIdentityBinding objects this way (v1.8's azureIdentityRef).
    const crd = {
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: "holders.example.com" },
      spec: {
        group: "example.com",
        scope: "Namespaced",
        names: { plural: "holders", singular: "holder", kind: "Holder", listKind: "HolderList" },
        versions: [
          {
            name: "v1",
            served: true,
            storage: true,
            schema: {
              openAPIV3Schema: {
                type: "object",
                properties: {
                  spec: {
                    type: "object",
                    properties: {
                      ref: {
                        type: "object",
                        "x-kubernetes-embedded-resource": true,
                        properties: { metadata: { type: "object" }, spec: { type: "object", properties: { x: { type: "string" } } } },
                      },
                    },
                  },
                },
              },
            },
          },
        ],
      },
    };
    expect((await api(server, "POST", CRD_URL, crd)).status).toBe(201);
    const ref = {
      apiVersion: "aadpodidentity.k8s.io/v1",
      kind: "AzureIdentity",
      metadata: { name: "kv-reader", namespace: "shop", labels: { a: "b" }, bogus: 1 },
      spec: { x: "kept", y: "pruned" },
    };
    const r = await api(server, "POST", "/apis/example.com/v1/namespaces/default/holders", {
      apiVersion: "example.com/v1",
      kind: "Holder",
      metadata: { name: "h" },
      spec: { ref },
    });
    expect(r.status).toBe(201);
    expect(r.body.spec.ref).toEqual({
      apiVersion: "aadpodidentity.k8s.io/v1",
      kind: "AzureIdentity",
      metadata: { name: "kv-reader", namespace: "shop", labels: { a: "b" } },
      spec: { x: "kept" },
    });
  });

  it("serves cluster-scoped custom resources without a namespace", async () => {
    const crd = azureIdentityCrd() as ReturnType<typeof azureIdentityCrd> & { spec: { scope: string } };
    crd.spec.scope = "Cluster";
    await api(server, "POST", CRD_URL, crd);
    const r = await api(server, "POST", "/apis/aadpodidentity.k8s.io/v1/azureidentities", azureIdentity("c", { type: 1 }));
    expect(r.status).toBe(201);
    expect(r.body.metadata.namespace).toBeUndefined();
    expect((await api(server, "GET", "/apis/aadpodidentity.k8s.io/v1/namespaces/default/azureidentities")).status).toBe(404);
  });
});
