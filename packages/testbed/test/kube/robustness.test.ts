import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { KubeApiServer } from "../../src/kube/kube-api-server";
import { api, configMap, startServer } from "./helpers/api";

let server: KubeApiServer;
beforeEach(async () => {
  server = await startServer();
});
afterEach(async () => server.close());

/** Deterministic PRNG (mulberry32) so a failure reproduces. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("robustness", () => {
  it("answers every malformed request with a Status error and keeps serving", async () => {
    const rand = prng(4);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
    await api(server, "POST", "/api/v1/namespaces/default/configmaps", configMap("existing"));
    const paths = [
      "/api/v1/namespaces/default/configmaps",
      "/api/v1/namespaces/default/configmaps/existing",
      "/api/v1/namespaces/default/configmaps/existing/status",
      "/api/v1/namespaces/default/pods",
      "/api/v1/namespaces/%zz/pods",
      "/api/v1/namespaces//pods",
      "/apis/apps/v1/namespaces/default/deployments/x",
      "/apis/coordination.k8s.io/v1/namespaces/default/leases",
      "/api/v1/nodes/n/status",
      "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
      "/openapi/v3/apis",
      "/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20(",
      "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=-1",
      "/api/v1/namespaces/default/configmaps?limit=-5&continue=%%%",
      "/api/v1/namespaces/default/configmaps?fieldValidation=Loose",
      "/api/v1/namespaces/default/configmaps/existing?dryRun=Some",
    ];
    const bodies = [
      "",
      "{",
      "null",
      "[]",
      "[{\"op\":\"nope\"}]",
      "{\"apiVersion\":\"v1\"}",
      "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":[]}",
      "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":{\"x\":1}}}",
      "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"existing\",\"finalizers\":\"x\"}}",
      "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"existing\"},\"data\":{\"k\":5}}",
      "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"},\"spec\":\"nope\"}",
      "{\"spec\":{\"containers\":[null,{\"$patch\":\"delete\"}]}}",
      "{\"metadata\":{\"$patch\":\"explode\"}}",
      JSON.stringify({ apiVersion: "apiextensions.k8s.io/v1", kind: "CustomResourceDefinition", metadata: { name: "a.b.c" }, spec: { versions: [{}] } }),
      "\u0000\u0001binary",
    ];
    const methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    const types = ["application/json", "application/merge-patch+json", "application/json-patch+json", "application/strategic-merge-patch+json", "text/yaml", ""];
    for (let i = 0; i < 300; i++) {
      const method = pick(methods);
      const path = pick(paths);
      const body = method === "GET" || method === "OPTIONS" ? undefined : pick(bodies);
      const headers: Record<string, string> = {};
      const type = pick(types);
      if (type) headers["content-type"] = type;
      const r = await api(server, method, path, body, headers);
      if (r.headers.get("content-type")?.startsWith("application/json") && r.body?.kind === "Status" && r.body.status === "Failure") {
        expect(r.status, `${method} ${path} ${body}`).toBe(r.body.code);
        expect(r.status, `${method} ${path} ${body}`).toBeLessThan(500);
      } else {
        expect(r.status, `${method} ${path} ${body}`).toBeLessThan(300);
      }
    }
    expect((await api(server, "GET", "/healthz")).body).toBe("ok");
    expect((await api(server, "GET", "/api/v1/namespaces/default/configmaps/existing")).status).toBeLessThan(500);
  });
});
