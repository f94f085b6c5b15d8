import { Agent, request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import type { KubeApiServer } from "../../src/kube/kube-api-server";
import { KubeApiServer as Server } from "../../src/kube/kube-api-server";
import { TestbedCa } from "../../src/tls/testbed-ca";
import { api, configMap, eventually, pod, startServer } from "./helpers/api";
import { RawWatch } from "./helpers/watch-client";

let server: KubeApiServer | undefined;
const watches: RawWatch[] = [];
afterEach(async () => {
  for (const w of watches.splice(0)) w.close();
  await server?.close();
  server = undefined;
});

const CM = "/api/v1/namespaces/default/configmaps";
const MIC = "system:serviceaccount:kube-system:podidentity-mic";
const NMI = "system:serviceaccount:kube-system:podidentity-nmi";

describe("identities", () => {
  it("requires a known bearer token and records the user of every request", async () => {
    server = await startServer({ tokens: { "mic-token": MIC, "nmi-token": NMI } });
    const none = await api(server, "GET", CM);
    expect(none.status).toBe(401);
    expect(none.body).toMatchObject({ kind: "Status", reason: "Unauthorized", code: 401 });
    expect((await api(server, "GET", CM, undefined, { authorization: "Bearer wrong" })).status).toBe(401);
    expect((await api(server, "GET", "/version")).status).toBe(200);
    await api(server, "GET", CM, undefined, { authorization: "Bearer mic-token" });
    await api(server, "POST", CM, configMap("a"), { authorization: "Bearer mic-token" });
    await api(server, "GET", "/api/v1/pods", undefined, { authorization: "Bearer nmi-token" });
    await api(server, "PATCH", `${CM}/a`, { data: { k: "v" } }, { authorization: "Bearer mic-token", "content-type": "application/merge-patch+json" });
    expect(server.requestCounts({ user: MIC })).toEqual({ "list configmaps": 1, "create configmaps": 1, "patch configmaps": 1 });
    expect(server.requestCounts({ user: NMI })).toEqual({ "list pods": 1 });
    expect(server.countRequests({ user: NMI, verb: "list", resource: "pods" })).toBe(1);
    const patch = server.requests.find((r) => r.verb === "patch");
    expect(patch).toMatchObject({ user: MIC, verb: "patch", resource: "configmaps", namespace: "default", name: "a", status: 200 });
  });

  it("serves HTTPS with a certificate from the testbed CA", async () => {
    const ca = await TestbedCa.create();
    server = new Server({ tls: ca, tokens: { t: MIC } });
    await server.start();
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const dispatcher = new Agent({ connect: { ca: ca.certPem } });
    try {
      const r = await request(`${server.url}/api/v1/namespaces`, { headers: { authorization: "Bearer t" }, dispatcher });
      expect(r.statusCode).toBe(200);
      const body = (await r.body.json()) as { items: unknown[] };
      expect(body.items).toHaveLength(4);
      await expect(request(`${server.url}/version`)).rejects.toThrow();
    } finally {
      await dispatcher.close();
    }
  });
});

describe("fault injection", () => {
  it("fails the next N matching requests with the given status, then recovers", async () => {
    server = await startServer();
    server.failNext({ verb: "list", resource: "configmaps", count: 2, code: 503 });
    expect((await api(server, "GET", "/api/v1/namespaces/default/pods")).status).toBe(200);
    const first = await api(server, "GET", CM);
    expect(first.status).toBe(503);
    expect(first.body).toMatchObject({ kind: "Status", reason: "ServiceUnavailable", code: 503 });
    expect(first.headers.get("retry-after")).toBe("1");
    expect((await api(server, "GET", CM)).status).toBe(503);
    expect((await api(server, "GET", CM)).status).toBe(200);
    server.failNext({ verb: "update", resource: "pods", subresource: "status", code: 409, reason: "Conflict", message: "injected conflict" });
    await api(server, "POST", "/api/v1/namespaces/default/pods", pod("p"));
    const p = await api(server, "GET", "/api/v1/namespaces/default/pods/p");
    const failed = await api(server, "PUT", "/api/v1/namespaces/default/pods/p/status", p.body);
    expect(failed.body).toMatchObject({ code: 409, reason: "Conflict", message: "injected conflict" });
  });

  it("adds latency to matching requests only", async () => {
    server = await startServer();
    server.addLatency({ verb: "get", resource: "configmaps", latencyMs: 800 });
    await api(server, "POST", CM, configMap("a"));
    await api(server, "GET", `${CM}/a`);
    await api(server, "GET", CM);
    server.clearFaults();
    await api(server, "GET", `${CM}/a`);
    const gets = server.requests.filter((r) => r.verb === "get" || r.verb === "list").map((r) => [r.verb, r.injectedLatencyMs]);
    expect(gets).toEqual([
      ["get", 800],
      ["list", 0],
      ["get", 0],
    ]);
  });

  it("drops all watch connections", async () => {
    server = await startServer();
    const w1 = await RawWatch.open(server, `${CM}?watch=true`);
    const w2 = await RawWatch.open(server, "/api/v1/pods?watch=true");
    watches.push(w1, w2);
    await eventually(() => (server?.activeWatches() === 2 ? true : undefined), "two watches");
    expect(server.dropWatches()).toBe(2);
    await w1.until((w) => w.ended, "w1 end");
    await w2.until((w) => w.ended, "w2 end");
    expect(server.activeWatches()).toBe(0);
  });

  it("restarts keeping state: same port, same objects, resourceVersions continue", async () => {
    server = await startServer();
    const a = await api(server, "POST", CM, configMap("a"));
    const port = server.port;
    const w = await RawWatch.open(server, `${CM}?watch=true&resourceVersion=${a.body.metadata.resourceVersion}`);
    watches.push(w);
    await server.restart({ keepState: true });
    await w.until((x) => x.ended, "watch cut by restart");
    expect(server.port).toBe(port);
    expect((await api(server, "GET", `${CM}/a`)).body.metadata.uid).toBe(a.body.metadata.uid);
    const b = await api(server, "POST", CM, configMap("b"));
    expect(Number(b.body.metadata.resourceVersion)).toBeGreaterThan(Number(a.body.metadata.resourceVersion));
  });

  it("restarts losing state: objects gone, old resourceVersions answered with 410", async () => {
    server = await startServer();
    const a = await api(server, "POST", CM, configMap("a"));
    await server.restart({ keepState: false });
    expect((await api(server, "GET", `${CM}/a`)).status).toBe(404);
    expect((await api(server, "GET", "/api/v1/namespaces/default")).status).toBe(200);
    const w = await RawWatch.open(server, `${CM}?watch=true&resourceVersion=${a.body.metadata.resourceVersion}`);
    watches.push(w);
    await w.until((x) => x.ended, "expired watch ends");
    expect(w.events[0]?.object.code).toBe(410);
    const list = await api(server, "GET", CM);
    const fresh = await RawWatch.open(server, `${CM}?watch=true&resourceVersion=${list.body.metadata.resourceVersion}`);
    watches.push(fresh);
    await api(server, "POST", CM, configMap("b"));
    expect((await fresh.count(1))[0]?.type).toBe("ADDED");
  });
});

describe("store access", () => {
  it("seeds objects with status, reads them and their history", async () => {
    server = await startServer();
    const seeded = server.seed({ ...pod("p", { nodeName: "node-1" }), status: { phase: "Running", podIP: "10.0.0.5" } });
    expect(seeded["status"]).toEqual({ phase: "Running", podIP: "10.0.0.5" });
    expect((await api(server, "GET", "/api/v1/pods?fieldSelector=status.podIP%3D10.0.0.5")).body.items).toHaveLength(1);
    server.patchObject("pods", "default", "p", { status: { phase: "Succeeded" } }, { subresource: "status" });
    expect(server.getObject("pods", "default", "p")?.["status"]).toMatchObject({ phase: "Succeeded" });
    expect(server.listObjects("pods").map((o) => (o["metadata"] as { name: string }).name)).toEqual(["p"]);
    expect(server.history("pods").map((e) => e.type)).toEqual(["ADDED", "MODIFIED", "MODIFIED"]);
    server.deleteObject("pods", "default", "p");
    expect(server.getObject("pods", "default", "p")).toBeUndefined();
    expect(() => server?.seed({ apiVersion: "v1", kind: "Nope", metadata: { name: "x" } })).toThrow(/no served resource/);
  });

  it("counts objects in place: the predicate sees each stored object once, by namespace if given", async () => {
    server = await startServer();
    server.seed({ apiVersion: "v1", kind: "Namespace", metadata: { name: "other" } });
    for (const [name, ns, phase] of [["a", "default", "Running"], ["b", "default", "Pending"], ["c", "other", "Running"]] as const) {
      server.seed({ ...pod(name, { nodeName: "node-1" }), metadata: { name, namespace: ns }, status: { phase } });
    }
    const running = (o: Readonly<Record<string, unknown>>) => (o["status"] as { phase?: string } | undefined)?.phase === "Running";
    expect(server.countObjects("pods", running)).toBe(2);
    expect(server.countObjects("pods", running, "default")).toBe(1);
    expect(server.countObjects("pods", () => true)).toBe(server.listObjects("pods").length);
    expect(() => server?.countObjects("pod", () => true)).toThrow(/unknown resource "pod"/);
  });

  it("validates its options", () => {
    expect(() => new Server({ watchHistorySize: 0 })).toThrow(/watchHistorySize/);
    expect(() => new Server({ kubernetesVersion: "1.31" })).toThrow(/kubernetesVersion/);
    expect(() => new Server({ port: 70000 })).toThrow(/port/);
  });
});
