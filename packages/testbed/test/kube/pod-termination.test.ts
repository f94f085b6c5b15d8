import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/clock";
import type { KubeApiServer } from "../../src/kube/kube-api-server";
import { api, eventually, pod, startServer } from "./helpers/api";
import { RawWatch } from "./helpers/watch-client";

const PODS = "/api/v1/namespaces/default/pods";
const START_MS = Date.parse("2026-01-02T03:04:05.000Z");
let server: KubeApiServer;
let clock: ManualClock;

beforeEach(async () => {
  clock = new ManualClock(START_MS);
  server = await startServer({ clock, podGracePeriodMsPerSecond: 1000 });
});
afterEach(async () => server.close());

/** A pod on node-1 reported Running (the state a kubelet has to stop gracefully). */
function runningPod(name: string, spec: Record<string, unknown> = {}): void {
  const p = pod(name, { nodeName: "node-1" });
  server.seed({ ...p, spec: { ...p.spec, ...spec }, status: { phase: "Running", podIP: "10.0.0.9" } });
}

describe("graceful deletion of pods", () => {
  it("DELETE marks a running pod with deletionTimestamp = now + 30 s and deletionGracePeriodSeconds 30, keeps it, and one MODIFIED event says so", async () => {
    runningPod("web");
    const w = await RawWatch.open(server, `${PODS}?watch=true&resourceVersion=${server.resourceVersion}`);
    const del = await api(server, "DELETE", `${PODS}/web`);
    expect(del.status).toBe(200);
    expect(del.body.metadata).toMatchObject({ deletionTimestamp: "2026-01-02T03:04:35Z", deletionGracePeriodSeconds: 30 });
    expect((await api(server, "GET", `${PODS}/web`)).body.status.phase).toBe("Running");
    await w.until((x) => x.events.length === 1, "MODIFIED");
    expect(w.events.map((e) => e.type)).toEqual(["MODIFIED"]);
    expect(w.events[0]?.object.metadata.deletionGracePeriodSeconds).toBe(30);
    w.close();
  });

  it("takes the grace period from DeleteOptions, then spec.terminationGracePeriodSeconds; 0 for pods never scheduled or already finished", async () => {
    runningPod("body");
    runningPod("query");
    runningPod("spec", { terminationGracePeriodSeconds: 5 });
    runningPod("negative");
    server.seed({ ...pod("unscheduled"), status: { phase: "Pending" } });
    server.seed({ ...pod("done", { nodeName: "node-1" }), status: { phase: "Succeeded" } });
    expect((await api(server, "DELETE", `${PODS}/body`, { kind: "DeleteOptions", apiVersion: "v1", gracePeriodSeconds: 7 })).body.metadata.deletionGracePeriodSeconds).toBe(7);
    expect((await api(server, "DELETE", `${PODS}/query?gracePeriodSeconds=9`)).body.metadata.deletionGracePeriodSeconds).toBe(9);
    expect((await api(server, "DELETE", `${PODS}/spec`)).body.metadata.deletionGracePeriodSeconds).toBe(5);
    expect((await api(server, "DELETE", `${PODS}/negative`, { gracePeriodSeconds: -3 })).body.metadata.deletionGracePeriodSeconds).toBe(1);
    for (const name of ["unscheduled", "done"]) {
      expect((await api(server, "DELETE", `${PODS}/${name}`)).status).toBe(200);
      expect(server.getObject("pods", "default", name), name).toBeUndefined();
    }
    const bad = await api(server, "DELETE", `${PODS}/body`, { gracePeriodSeconds: "soon" });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/gracePeriodSeconds/);
  });

  it("removes the pod when its grace period has passed on the clock (one DELETED event), not before", async () => {
    runningPod("web", { terminationGracePeriodSeconds: 10 });
    server.deleteObject("pods", "default", "web");
    clock.advance(9_999);
    expect(server.expireGracePeriods()).toBe(0);
    expect(server.getObject("pods", "default", "web")).toBeDefined();
    clock.advance(1);
    expect(server.expireGracePeriods()).toBe(1);
    expect(server.getObject("pods", "default", "web")).toBeUndefined();
    expect(server.history("pods").map((e) => e.type)).toEqual(["ADDED", "MODIFIED", "MODIFIED", "DELETED"]);
  });

  it("any request checks the clock first, so watchers of a ManualClock server see the removal without a test control", async () => {
    runningPod("web", { terminationGracePeriodSeconds: 2 });
    server.deleteObject("pods", "default", "web");
    clock.advance(2_000);
    expect((await api(server, "GET", `${PODS}/web`)).status).toBe(404);
  });

  it("a second DELETE only shortens the grace period; gracePeriodSeconds=0 (the kubelet's final delete, or --force) removes it at once", async () => {
    runningPod("web");
    await api(server, "DELETE", `${PODS}/web`);
    const longer = await api(server, "DELETE", `${PODS}/web`, { gracePeriodSeconds: 60 });
    expect(longer.body.metadata.deletionGracePeriodSeconds).toBe(30);
    const shorter = await api(server, "DELETE", `${PODS}/web`, { gracePeriodSeconds: 3 });
    expect(shorter.body.metadata).toMatchObject({ deletionGracePeriodSeconds: 3, deletionTimestamp: "2026-01-02T03:04:08Z" });
    const uid = shorter.body.metadata.uid as string;
    const wrongUid = await api(server, "DELETE", `${PODS}/web`, { gracePeriodSeconds: 0, preconditions: { uid: "not-it" } });
    expect(wrongUid.status).toBe(409);
    const final = await api(server, "DELETE", `${PODS}/web`, { gracePeriodSeconds: 0, preconditions: { uid } });
    expect(final.status).toBe(200);
    expect(server.getObject("pods", "default", "web")).toBeUndefined();
    expect(server.history("pods").map((e) => e.type)).toEqual(["ADDED", "MODIFIED", "MODIFIED", "MODIFIED", "DELETED"]);
  });

  it("status updates during the grace period keep the deletion marks, and the name cannot be re-created until the pod is gone", async () => {
    runningPod("web");
    server.deleteObject("pods", "default", "web");
    const patched = server.patchObject("pods", "default", "web", { status: { phase: "Failed" } }, { subresource: "status" });
    expect(patched["metadata"]).toMatchObject({ deletionGracePeriodSeconds: 30 });
    expect((await api(server, "POST", PODS, pod("web", { nodeName: "node-1" }))).status).toBe(409);
    server.deleteObject("pods", "default", "web", { gracePeriodSeconds: 0 });
    expect((await api(server, "POST", PODS, pod("web", { nodeName: "node-1" }))).status).toBe(201);
  });

  it("a pod with a finalizer outlives its grace period until the finalizer goes", async () => {
    const p = pod("held", { nodeName: "node-1" });
    server.seed({ ...p, metadata: { ...p.metadata, finalizers: ["example.com/hold"] }, spec: { ...p.spec, terminationGracePeriodSeconds: 1 }, status: { phase: "Running" } });
    server.deleteObject("pods", "default", "held");
    server.patchObject("pods", "default", "held", { metadata: { finalizers: null } });
    expect(server.getObject("pods", "default", "held"), "finalizer gone, grace period not").toBeDefined();
    runningPod("held2");
    server.patchObject("pods", "default", "held2", { metadata: { finalizers: ["example.com/hold"] } });
    server.deleteObject("pods", "default", "held2", { gracePeriodSeconds: 1 });
    clock.advance(1_000);
    expect(server.expireGracePeriods()).toBe(1);
    expect(server.getObject("pods", "default", "held"), "both gone: removed").toBeUndefined();
    expect(server.getObject("pods", "default", "held2")?.["metadata"]).toMatchObject({ deletionGracePeriodSeconds: 0 });
    server.patchObject("pods", "default", "held2", { metadata: { finalizers: null } });
    expect(server.getObject("pods", "default", "held2")).toBeUndefined();
  });

  it("a namespace being deleted waits for its pods' grace periods", async () => {
    await api(server, "POST", "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "shop" } });
    server.seed({ ...pod("web", { nodeName: "node-1", namespace: "shop" }), status: { phase: "Running" } });
    await api(server, "DELETE", "/api/v1/namespaces/shop");
    await eventually(() => (server.getObject("pods", "shop", "web")?.["metadata"] as { deletionTimestamp?: string } | undefined)?.deletionTimestamp, "pod marked");
    expect(server.getObject("namespaces", undefined, "shop")).toBeDefined();
    clock.advance(30_000);
    expect(server.expireGracePeriods()).toBe(1);
    await eventually(() => (server.getObject("namespaces", undefined, "shop") === undefined ? true : undefined), "namespace removed");
  });
});

describe("graceful deletion on a real clock", () => {
  it("the timer removes the pod after grace × podGracePeriodMsPerSecond", async () => {
    const real = await startServer({ podGracePeriodMsPerSecond: 20 });
    try {
      const p = pod("web", { nodeName: "node-1" });
      real.seed({ ...p, spec: { ...p.spec, terminationGracePeriodSeconds: 2 }, status: { phase: "Running" } });
      const w = await RawWatch.open(real, `${PODS}?watch=true&resourceVersion=${real.resourceVersion}`);
      real.deleteObject("pods", "default", "web");
      await w.until((x) => x.events.some((e) => e.type === "DELETED"), "DELETED by the grace timer");
      expect(w.events.map((e) => e.type)).toEqual(["MODIFIED", "DELETED"]);
      w.close();
    } finally {
      await real.close();
    }
  });

  it("validates podGracePeriodMsPerSecond", async () => {
    const { KubeApiServer } = await import("../../src/kube/kube-api-server");
    expect(() => new KubeApiServer({ podGracePeriodMsPerSecond: -1 })).toThrow(/podGracePeriodMsPerSecond/);
  });
});
