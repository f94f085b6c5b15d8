import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { KubeApiServer } from "../../src/kube/kube-api-server";
import { api, configMap, pod, startServer } from "./helpers/api";

let server: KubeApiServer;
beforeEach(async () => {
  server = await startServer({ maxRequestBodyBytes: 64 * 1024 });
});
afterEach(async () => server.close());

const CM = "/api/v1/namespaces/default/configmaps";

describe("bad input gets the Kubernetes Status error with the right code", () => {
  it("400 for malformed JSON", async () => {
    const r = await api(server, "POST", CM, "{not json");
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ kind: "Status", reason: "BadRequest", code: 400 });
    expect(r.body.message).toContain("json parse error");
  });

  it("400 for a kind or apiVersion that does not match the URL; a built-in's missing ones default from the URL", async () => {
    const wrongKind = await api(server, "POST", CM, { ...pod("p") });
    expect(wrongKind.status).toBe(400);
    expect(wrongKind.body.message).toContain("does not match the expected kind (ConfigMap)");
    const wrongVersion = await api(server, "POST", CM, { ...configMap("a"), apiVersion: "apps/v1" });
    expect(wrongVersion.status).toBe(400);
    expect(wrongVersion.body.message).toBe("the API version in the data (apps/v1) does not match the expected API version (v1)");
    // kube-apiserver's typed decoder fills them in for built-ins (custom resources: test/kube/crd.test.ts).
    const noKind = await api(server, "POST", CM, { apiVersion: "v1", metadata: { name: "x" } });
    expect(noKind.status).toBe(201);
    expect(noKind.body).toMatchObject({ apiVersion: "v1", kind: "ConfigMap" });
    const bare = await api(server, "POST", CM, { metadata: { name: "y" } });
    expect(bare.status).toBe(201);
    expect(bare.body).toMatchObject({ apiVersion: "v1", kind: "ConfigMap" });
  });

  it("400 when body namespace or name disagree with the URL", async () => {
    const ns = await api(server, "POST", CM, configMap("a", {}, { namespace: "other" }));
    expect(ns.status).toBe(400);
    expect(ns.body.message).toBe("the namespace of the provided object does not match the namespace sent on the request");
    await api(server, "POST", CM, configMap("a"));
    const name = await api(server, "PUT", `${CM}/a`, configMap("b"));
    expect(name.status).toBe(400);
    expect(name.body.message).toBe("the name of the object (b) does not match the name on the URL (a)");
  });

  it("422 Invalid with causes for a missing or invalid name and bad labels", async () => {
    const missing = await api(server, "POST", CM, { apiVersion: "v1", kind: "ConfigMap", metadata: {} });
    expect(missing.status).toBe(422);
    expect(missing.body.reason).toBe("Invalid");
    expect(missing.body.details.causes).toEqual([{ reason: "FieldValueRequired", message: "Required value: name or generateName is required", field: "metadata.name" }]);
    const upper = await api(server, "POST", CM, configMap("Not_Valid"));
    expect(upper.status).toBe(422);
    expect(upper.body.message).toMatch(/^ConfigMap "Not_Valid" is invalid: metadata.name: Invalid value: "Not_Valid": a lowercase RFC 1123 subdomain/);
    const label = await api(server, "POST", CM, configMap("l", {}, { labels: { "bad key!": "v" } }));
    expect(label.status).toBe(422);
    const pods = await api(server, "POST", "/api/v1/namespaces/default/pods", { apiVersion: "v1", kind: "Pod", metadata: { name: "p" }, spec: { containers: [] } });
    expect(pods.status).toBe(422);
    expect(pods.body.details.causes[0].field).toBe("spec.containers");
  });

  it("400 for label types that would not decode", async () => {
    const r = await api(server, "POST", CM, configMap("a", {}, { labels: { a: 1 } }));
    expect(r.status).toBe(400);
  });

  it("400 for invalid label and field selectors", async () => {
    for (const selector of ["a in b", "a in (b", "!", "a=b=c", "a,,b", "-bad=x", "a=(b)"]) {
      const r = await api(server, "GET", `${CM}?labelSelector=${encodeURIComponent(selector)}`);
      expect(r.status, selector).toBe(400);
      expect(r.body.reason, selector).toBe("BadRequest");
    }
    const unsupported = await api(server, "GET", `${CM}?fieldSelector=${encodeURIComponent("spec.nodeName=x")}`);
    expect(unsupported.status).toBe(400);
    expect(unsupported.body.message).toBe("field label not supported: spec.nodeName");
    const garbage = await api(server, "GET", `${CM}?fieldSelector=${encodeURIComponent("metadata.name")}`);
    expect(garbage.status).toBe(400);
  });

  it("404 for unknown resources, groups and versions", async () => {
    for (const path of ["/api/v1/namespaces/default/widgets", "/apis/example.com/v1/widgets", "/api/v2/pods", "/apis/apps/v9", "/nothing", "/api/v1/pods/p"]) {
      const r = await api(server, "GET", path);
      expect(r.status, path).toBe(404);
      expect(r.body).toMatchObject({ kind: "Status", reason: "NotFound", message: "the server could not find the requested resource" });
    }
  });

  it("405 for methods a path does not support", async () => {
    expect((await api(server, "POST", `${CM}/a`, configMap("a"))).status).toBe(405);
    expect((await api(server, "PUT", CM, configMap("a"))).status).toBe(405);
    expect((await api(server, "DELETE", "/api/v1/pods")).status).toBe(405);
    expect((await api(server, "POST", "/api/v1", {})).status).toBe(405);
  });

  it("413 for a body above the limit", async () => {
    const r = await api(server, "POST", CM, configMap("big", { k: "x".repeat(100 * 1024) }));
    expect(r.status).toBe(413);
    expect(r.body.reason).toBe("RequestEntityTooLarge");
  });

  it("415 for unsupported patch types, and strategic merge on custom resources", async () => {
    await api(server, "POST", CM, configMap("a"));
    const r = await api(server, "PATCH", `${CM}/a`, { data: {} }, { "content-type": "text/plain" });
    expect(r.status).toBe(415);
    expect(r.body.reason).toBe("UnsupportedMediaType");
    const proto = await api(server, "POST", CM, configMap("b"), { "content-type": "application/vnd.kubernetes.protobuf" });
    expect(proto.status).toBe(415);
  });

  it("400 for an invalid continue token, limit or resourceVersion, 422 for a bad resourceVersionMatch", async () => {
    expect((await api(server, "GET", `${CM}?continue=garbage`)).status).toBe(400);
    expect((await api(server, "GET", `${CM}?limit=ten`)).status).toBe(400);
    expect((await api(server, "GET", `${CM}?resourceVersion=abc`)).status).toBe(400);
    expect((await api(server, "GET", `${CM}?resourceVersion=1&resourceVersionMatch=Newest`)).status).toBe(422);
    expect((await api(server, "GET", `${CM}?resourceVersionMatch=Exact`)).status).toBe(422);
  });

  it("survives a flood of bad requests and keeps serving", async () => {
    const bad = await Promise.all(
      ["{", "[]", "null", "42", '"s"', '{"kind":5}'].map((b) => api(server, "POST", CM, b)),
    );
    for (const r of bad) expect(r.status).toBe(400);
    expect((await api(server, "GET", "/healthz")).body).toBe("ok");
  });
});
