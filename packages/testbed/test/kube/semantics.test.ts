import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/clock";
import type { KubeApiServer } from "../../src/kube/kube-api-server";
import { api, configMap, eventually, pod, startServer } from "./helpers/api";

let server: KubeApiServer;
const clock = new ManualClock(Date.parse("2026-01-02T03:04:05.678Z"));
beforeEach(async () => {
  server = await startServer({ clock });
});
afterEach(async () => server.close());

const CM = "/api/v1/namespaces/default/configmaps";
const PODS = "/api/v1/namespaces/default/pods";
const DEPLOY = "/apis/apps/v1/namespaces/default/deployments";

function deployment(name: string, replicas = 1) {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name },
    spec: { replicas, selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: "app", image: "nginx:1" }] } } },
  };
}

describe("object metadata", () => {
  it("assigns resourceVersions from one counter shared by all resources", async () => {
    const a = await api(server, "POST", CM, configMap("a"));
    const b = await api(server, "POST", PODS, pod("b"));
    const c = await api(server, "POST", CM, configMap("c"));
    const rvs = [a, b, c].map((r) => Number(r.body.metadata.resourceVersion));
    expect(rvs[1]).toBe((rvs[0] as number) + 1);
    expect(rvs[2]).toBe((rvs[1] as number) + 1);
    const list = await api(server, "GET", CM);
    expect(list.body.metadata.resourceVersion).toBe(String(rvs[2]));
  });

  it("sets uid and creationTimestamp from the injected clock, ignoring client-supplied values", async () => {
    const r = await api(server, "POST", CM, configMap("a", {}, { uid: "client-uid", creationTimestamp: "2000-01-01T00:00:00Z" }));
    expect(r.status).toBe(201);
    expect(r.body.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.body.metadata.uid).not.toBe("client-uid");
    expect(r.body.metadata.creationTimestamp).toBe("2026-01-02T03:04:05Z");
  });

  it("generates a name from generateName", async () => {
    const r = await api(server, "POST", CM, { apiVersion: "v1", kind: "ConfigMap", metadata: { generateName: "gen-" } });
    expect(r.status).toBe(201);
    expect(r.body.metadata.name).toMatch(/^gen-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
  });

  it("bumps generation on spec changes only, not on metadata or status changes", async () => {
    const created = await api(server, "POST", DEPLOY, deployment("d"));
    expect(created.body.metadata.generation).toBe(1);
    const labelled = await api(server, "PATCH", `${DEPLOY}/d`, { metadata: { labels: { x: "y" } } }, { "content-type": "application/merge-patch+json" });
    expect(labelled.body.metadata.generation).toBe(1);
    const status = await api(server, "PATCH", `${DEPLOY}/d/status`, { status: { replicas: 1 } }, { "content-type": "application/merge-patch+json" });
    expect(status.body.metadata.generation).toBe(1);
    const scaled = await api(server, "PATCH", `${DEPLOY}/d`, { spec: { replicas: 3 } }, { "content-type": "application/merge-patch+json" });
    expect(scaled.body.metadata.generation).toBe(2);
  });

  it("does not bump the resourceVersion for an update that changes nothing", async () => {
    const created = await api(server, "POST", CM, configMap("a", { k: "v" }));
    const same = await api(server, "PUT", `${CM}/a`, created.body);
    expect(same.status).toBe(200);
    expect(same.body.metadata.resourceVersion).toBe(created.body.metadata.resourceVersion);
    expect(server.history("configmaps").filter((e) => e.type === "MODIFIED")).toHaveLength(0);
  });
});

describe("errors with Kubernetes Status bodies", () => {
  it("answers 409 Conflict for a PUT with a stale resourceVersion", async () => {
    const created = await api(server, "POST", CM, configMap("a", { k: "1" }));
    const first = await api(server, "PUT", `${CM}/a`, { ...created.body, data: { k: "2" } });
    expect(first.status).toBe(200);
    const stale = await api(server, "PUT", `${CM}/a`, { ...created.body, data: { k: "3" } });
    expect(stale.status).toBe(409);
    expect(stale.body).toEqual({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: 'Operation cannot be fulfilled on configmaps "a": the object has been modified; please apply your changes to the latest version and try again',
      reason: "Conflict",
      details: { name: "a", kind: "configmaps" },
      code: 409,
    });
    expect((await api(server, "GET", `${CM}/a`)).body.data).toEqual({ k: "2" });
  });

  it("answers 409 Conflict for a PATCH carrying a stale resourceVersion", async () => {
    const created = await api(server, "POST", CM, configMap("a"));
    await api(server, "PATCH", `${CM}/a`, { data: { x: "1" } }, { "content-type": "application/merge-patch+json" });
    const stale = await api(server, "PATCH", `${CM}/a`, { metadata: { resourceVersion: created.body.metadata.resourceVersion }, data: { x: "2" } }, { "content-type": "application/merge-patch+json" });
    expect(stale.status).toBe(409);
    expect(stale.body.reason).toBe("Conflict");
  });

  it("answers 409 AlreadyExists for a duplicate create", async () => {
    await api(server, "POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases", { apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { name: "l" }, spec: {} });
    const dup = await api(server, "POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases", { apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { name: "l" }, spec: {} });
    expect(dup.status).toBe(409);
    expect(dup.body.reason).toBe("AlreadyExists");
    expect(dup.body.message).toBe('leases.coordination.k8s.io "l" already exists');
    expect(dup.body.details).toEqual({ name: "l", group: "coordination.k8s.io", kind: "leases" });
  });

  it("answers 404 NotFound for a missing object, for every verb", async () => {
    for (const [method, body, headers] of [
      ["GET", undefined, {}],
      ["PUT", configMap("nope"), {}],
      ["PATCH", { data: {} }, { "content-type": "application/merge-patch+json" }],
      ["DELETE", undefined, {}],
    ] as const) {
      const r = await api(server, method, `${CM}/nope`, body, headers);
      expect(r.status, method).toBe(404);
      expect(r.body).toMatchObject({ kind: "Status", reason: "NotFound", message: 'configmaps "nope" not found', code: 404 });
    }
  });

  it("requires metadata.resourceVersion on PUT of a custom resource (no unconditional update)", async () => {
    const crdUrl = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    await api(server, "POST", crdUrl, {
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: "widgets.example.com" },
      spec: { group: "example.com", scope: "Namespaced", names: { plural: "widgets", kind: "Widget" }, versions: [{ name: "v1", served: true, storage: true, schema: { openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true } } }] },
    });
    const url = "/apis/example.com/v1/namespaces/default/widgets";
    await api(server, "POST", url, { apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w" } });
    const r = await api(server, "PUT", `${url}/w`, { apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w" }, spec: { a: 1 } });
    expect(r.status).toBe(422);
    expect(r.body.message).toContain("metadata.resourceVersion: Invalid value: \"0x0\": must be specified for an update");
  });
});

describe("finalizers and deletion", () => {
  it("marks an object with finalizers on DELETE and deletes it when the last finalizer is removed", async () => {
    const created = await api(server, "POST", CM, configMap("f", {}, { finalizers: ["example.com/a", "example.com/b"] }));
    const del = await api(server, "DELETE", `${CM}/f`, { kind: "DeleteOptions", apiVersion: "v1", propagationPolicy: "Background" });
    expect(del.status).toBe(200);
    expect(del.body.metadata.deletionTimestamp).toBe("2026-01-02T03:04:05Z");
    const marked = await api(server, "GET", `${CM}/f`);
    expect(marked.status).toBe(200);
    expect(marked.body.metadata.uid).toBe(created.body.metadata.uid);
    const again = await api(server, "DELETE", `${CM}/f`);
    expect(again.status).toBe(200);

    const addNew = await api(server, "PATCH", `${CM}/f`, { metadata: { finalizers: ["example.com/a", "example.com/b", "example.com/c"] } }, { "content-type": "application/merge-patch+json" });
    expect(addNew.status).toBe(422);
    expect(addNew.body.message).toContain("no new finalizers can be added if the object is being deleted");

    const one = await api(server, "PATCH", `${CM}/f`, { metadata: { finalizers: ["example.com/b"] } }, { "content-type": "application/merge-patch+json" });
    expect(one.status).toBe(200);
    expect((await api(server, "GET", `${CM}/f`)).status).toBe(200);
    const last = await api(server, "PATCH", `${CM}/f`, [{ op: "remove", path: "/metadata/finalizers" }], { "content-type": "application/json-patch+json" });
    expect(last.status).toBe(200);
    expect((await api(server, "GET", `${CM}/f`)).status).toBe(404);
    expect(server.history("configmaps").map((e) => e.type)).toEqual(["ADDED", "MODIFIED", "MODIFIED", "DELETED"]);
  });

  it("deletes an object without finalizers at once and checks DeleteOptions", async () => {
    const created = await api(server, "POST", CM, configMap("d"));
    const badPolicy = await api(server, "DELETE", `${CM}/d`, { propagationPolicy: "Sideways" });
    expect(badPolicy.status).toBe(422);
    const badUid = await api(server, "DELETE", `${CM}/d`, { preconditions: { uid: "other" } });
    expect(badUid.status).toBe(409);
    const del = await api(server, "DELETE", `${CM}/d`, { propagationPolicy: "Background", preconditions: { uid: created.body.metadata.uid } });
    expect(del.status).toBe(200);
    expect(del.body).toMatchObject({ kind: "Status", status: "Success", details: { name: "d", kind: "configmaps" } });
    expect((await api(server, "GET", `${CM}/d`)).status).toBe(404);
  });

  it("cascades namespace deletion: Terminating, contents deleted, finalizers respected, then the namespace is gone", async () => {
    await api(server, "POST", "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "team" } });
    await api(server, "POST", "/api/v1/namespaces/team/configmaps", configMap("plain"));
    await api(server, "POST", "/api/v1/namespaces/team/configmaps", configMap("held", {}, { finalizers: ["example.com/hold"] }));
    await api(server, "POST", "/api/v1/namespaces/team/pods", pod("p"));
    const del = await api(server, "DELETE", "/api/v1/namespaces/team");
    expect(del.status).toBe(200);
    expect(del.body.status.phase).toBe("Terminating");
    const refused = await api(server, "POST", "/api/v1/namespaces/team/configmaps", configMap("late"));
    expect(refused.status).toBe(403);
    expect(refused.body.message).toContain("because it is being terminated");
    await eventually(async () => ((await api(server, "GET", "/api/v1/namespaces/team/pods/p")).status === 404 ? true : undefined), "pod deleted");
    const held = await api(server, "GET", "/api/v1/namespaces/team/configmaps/held");
    expect(held.body.metadata.deletionTimestamp).toBeDefined();
    expect((await api(server, "GET", "/api/v1/namespaces/team")).body.status.phase).toBe("Terminating");
    await api(server, "PATCH", "/api/v1/namespaces/team/configmaps/held", { metadata: { finalizers: null } }, { "content-type": "application/merge-patch+json" });
    await eventually(async () => ((await api(server, "GET", "/api/v1/namespaces/team")).status === 404 ? true : undefined), "namespace removed");
  });

  it("refuses to create objects in a namespace that does not exist", async () => {
    const r = await api(server, "POST", "/api/v1/namespaces/ghost/configmaps", configMap("a"));
    expect(r.status).toBe(404);
    expect(r.body.message).toBe('namespaces "ghost" not found');
  });
});

describe("patch formats", () => {
  it("applies JSON merge patch: null deletes, lists replace", async () => {
    await api(server, "POST", CM, configMap("m", { a: "1", b: "2" }));
    const r = await api(server, "PATCH", `${CM}/m`, { data: { a: null, c: "3" } }, { "content-type": "application/merge-patch+json" });
    expect(r.body.data).toEqual({ b: "2", c: "3" });
  });

  it("applies JSON patch including a failing test operation as 422", async () => {
    await api(server, "POST", CM, configMap("j", { a: "1" }));
    const ok = await api(server, "PATCH", `${CM}/j`, [{ op: "test", path: "/data/a", value: "1" }, { op: "replace", path: "/data/a", value: "2" }], { "content-type": "application/json-patch+json" });
    expect(ok.body.data).toEqual({ a: "2" });
    const failed = await api(server, "PATCH", `${CM}/j`, [{ op: "test", path: "/data/a", value: "1" }], { "content-type": "application/json-patch+json" });
    expect(failed.status).toBe(422);
  });

  it("applies strategic merge patch with merge keys and directives on built-in types", async () => {
    const d = deployment("s");
    d.spec.template.spec.containers = [
      { name: "app", image: "nginx:1" },
      { name: "side", image: "busybox:1" },
    ];
    await api(server, "POST", DEPLOY, d);
    const r = await api(
      server,
      "PATCH",
      `${DEPLOY}/s`,
      { spec: { template: { spec: { containers: [{ name: "app", image: "nginx:2" }, { name: "side", $patch: "delete" }, { name: "new", image: "x:1" }] } } } },
      { "content-type": "application/strategic-merge-patch+json" },
    );
    expect(r.status).toBe(200);
    // The server defaults each template container (SetDefaults_Container), as kube-apiserver does.
    const defaults = { imagePullPolicy: "IfNotPresent", resources: {}, terminationMessagePath: "/dev/termination-log", terminationMessagePolicy: "File" };
    expect(r.body.spec.template.spec.containers).toEqual([
      { name: "app", image: "nginx:2", ...defaults },
      { name: "new", image: "x:1", ...defaults },
    ]);
    const fin = await api(server, "PATCH", `${DEPLOY}/s`, { metadata: { finalizers: ["a/b"] } }, { "content-type": "application/strategic-merge-patch+json" });
    const fin2 = await api(server, "PATCH", `${DEPLOY}/s`, { metadata: { finalizers: ["c/d"] } }, { "content-type": "application/strategic-merge-patch+json" });
    expect(fin.body.metadata.finalizers).toEqual(["a/b"]);
    expect(fin2.body.metadata.finalizers).toEqual(["a/b", "c/d"]);
  });
});

describe("status subresource", () => {
  it("ignores status in writes to the main resource and everything but status in writes to /status", async () => {
    const created = await api(server, "POST", PODS, { ...pod("p"), status: { phase: "Running", podIP: "10.0.0.9" } });
    expect(created.body.status).toEqual({ phase: "Pending" });
    const viaMain = await api(server, "PATCH", `${PODS}/p`, { metadata: { labels: { a: "b" } }, status: { podIP: "10.0.0.1" } }, { "content-type": "application/merge-patch+json" });
    expect(viaMain.body.status.podIP).toBeUndefined();
    expect(viaMain.body.metadata.labels).toEqual({ a: "b" });
    const viaStatus = await api(server, "PATCH", `${PODS}/p/status`, { metadata: { labels: { a: "changed" } }, spec: { nodeName: "n1" }, status: { podIP: "10.0.0.2", phase: "Running" } }, { "content-type": "application/merge-patch+json" });
    expect(viaStatus.status).toBe(200);
    expect(viaStatus.body.status).toMatchObject({ podIP: "10.0.0.2", phase: "Running" });
    expect(viaStatus.body.metadata.labels).toEqual({ a: "b" });
    expect(viaStatus.body.spec.nodeName).toBeUndefined();
    const put = await api(server, "PUT", `${PODS}/p/status`, { ...viaStatus.body, status: { phase: "Succeeded" } });
    expect(put.body.status).toEqual({ phase: "Succeeded" });
  });

  it("rejects pod spec changes other than images (pods are mostly immutable)", async () => {
    await api(server, "POST", PODS, pod("p"));
    const r = await api(server, "PATCH", `${PODS}/p`, { spec: { nodeName: "n1" } }, { "content-type": "application/merge-patch+json" });
    expect(r.status).toBe(422);
    expect(r.body.message).toContain("pod updates may not change fields");
  });
});

describe("secrets", () => {
  it("folds stringData into base64 data and defaults the type", async () => {
    const r = await api(server, "POST", "/api/v1/namespaces/default/secrets", { apiVersion: "v1", kind: "Secret", metadata: { name: "s" }, stringData: { password: "hunter2" } });
    expect(r.body.data).toEqual({ password: Buffer.from("hunter2").toString("base64") });
    expect(r.body.stringData).toBeUndefined();
    expect(r.body.type).toBe("Opaque");
  });
});
