import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { KubeApiServer } from "../../src/kube/kube-api-server";
import { api, configMap, pod, startServer } from "./helpers/api";
import { RawWatch } from "./helpers/watch-client";

let server: KubeApiServer;
const watches: RawWatch[] = [];
beforeEach(async () => {
  server = await startServer({ watchHistorySize: 5 });
});
afterEach(async () => {
  for (const w of watches.splice(0)) w.close();
  await server.close();
});

const CM = "/api/v1/namespaces/default/configmaps";
const PODS = "/api/v1/namespaces/default/pods";
const merge = { "content-type": "application/merge-patch+json" };

async function watch(path: string): Promise<RawWatch> {
  const w = await RawWatch.open(server, path);
  watches.push(w);
  return w;
}

async function names(path: string): Promise<string[]> {
  const r = await api(server, "GET", path);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body.items.map((i: { metadata: { name: string } }) => i.metadata.name);
}

describe("label selectors", () => {
  beforeEach(async () => {
    await api(server, "POST", CM, configMap("a", {}, { labels: { env: "prod", tier: "web" } }));
    await api(server, "POST", CM, configMap("b", {}, { labels: { env: "dev", tier: "web" } }));
    await api(server, "POST", CM, configMap("c", {}, { labels: { env: "test" } }));
    await api(server, "POST", CM, configMap("d"));
  });

  it.each([
    ["env=prod", ["a"]],
    ["env==prod", ["a"]],
    ["env!=prod", ["b", "c", "d"]],
    ["env in (prod,dev)", ["a", "b"]],
    ["env notin (prod,dev)", ["c", "d"]],
    ["tier", ["a", "b"]],
    ["!tier", ["c", "d"]],
    ["env=dev,tier=web", ["b"]],
    ["tier,env notin (dev)", ["a"]],
  ])("%s", async (selector, expected) => {
    expect(await names(`${CM}?labelSelector=${encodeURIComponent(selector)}`)).toEqual(expected);
  });
});

describe("field selectors", () => {
  it("select pods by metadata.name, metadata.namespace, spec.nodeName, status.podIP and status.phase", async () => {
    await api(server, "POST", PODS, pod("p1", { nodeName: "node-a" }));
    await api(server, "POST", PODS, pod("p2", { nodeName: "node-b" }));
    await api(server, "PATCH", `${PODS}/p2/status`, { status: { phase: "Running", podIP: "10.1.0.2" } }, merge);
    const q = (fs: string) => names(`/api/v1/pods?fieldSelector=${encodeURIComponent(fs)}`);
    expect(await q("metadata.name=p1")).toEqual(["p1"]);
    expect(await q("metadata.namespace=default,metadata.name!=p1")).toEqual(["p2"]);
    expect(await q("spec.nodeName=node-b")).toEqual(["p2"]);
    expect(await q("spec.nodeName==node-a")).toEqual(["p1"]);
    expect(await q("status.podIP=10.1.0.2")).toEqual(["p2"]);
    expect(await q("status.phase=Pending")).toEqual(["p1"]);
    expect(await q("status.phase!=Pending")).toEqual(["p2"]);
    expect(await q("metadata.namespace=kube-system")).toEqual([]);
  });
});

describe("limit and continue", () => {
  it("pages through a consistent snapshot with remainingItemCount", async () => {
    for (const n of ["a", "b", "c", "d", "e"]) await api(server, "POST", CM, configMap(n));
    const p1 = await api(server, "GET", `${CM}?limit=2`);
    expect(p1.body.items.map((i: { metadata: { name: string } }) => i.metadata.name)).toEqual(["a", "b"]);
    expect(p1.body.metadata.remainingItemCount).toBe(3);
    expect(p1.body.metadata.continue).toBeTruthy();
    // Changes after the first page are not seen by later pages (same resourceVersion snapshot).
    await api(server, "DELETE", `${CM}/c`);
    await api(server, "POST", CM, configMap("bb"));
    const p2 = await api(server, "GET", `${CM}?limit=2&continue=${p1.body.metadata.continue}`);
    expect(p2.body.items.map((i: { metadata: { name: string } }) => i.metadata.name)).toEqual(["c", "d"]);
    expect(p2.body.metadata.resourceVersion).toBe(p1.body.metadata.resourceVersion);
    const p3 = await api(server, "GET", `${CM}?limit=2&continue=${p2.body.metadata.continue}`);
    expect(p3.body.items.map((i: { metadata: { name: string } }) => i.metadata.name)).toEqual(["e"]);
    expect(p3.body.metadata.continue).toBeUndefined();
  });

  it("omits remainingItemCount when a selector filters the list", async () => {
    for (const n of ["a", "b", "c"]) await api(server, "POST", CM, configMap(n, {}, { labels: { x: "y" } }));
    const r = await api(server, "GET", `${CM}?limit=1&labelSelector=x%3Dy`);
    expect(r.body.items).toHaveLength(1);
    expect(r.body.metadata.continue).toBeTruthy();
    expect(r.body.metadata.remainingItemCount).toBeUndefined();
  });

  it("answers 410 Expired for a continue token older than the history", async () => {
    for (const n of ["a", "b", "c"]) await api(server, "POST", CM, configMap(n));
    const p1 = await api(server, "GET", `${CM}?limit=1`);
    for (let i = 0; i < 6; i++) await api(server, "PATCH", `${CM}/a`, { data: { i: String(i) } }, merge);
    const r = await api(server, "GET", `${CM}?limit=1&continue=${p1.body.metadata.continue}`);
    expect(r.status).toBe(410);
    expect(r.body).toMatchObject({ kind: "Status", reason: "Expired", code: 410 });
  });

  it("serves resourceVersionMatch=Exact from history", async () => {
    const a = await api(server, "POST", CM, configMap("a"));
    await api(server, "POST", CM, configMap("b"));
    const r = await api(server, "GET", `${CM}?resourceVersion=${a.body.metadata.resourceVersion}&resourceVersionMatch=Exact`);
    expect(r.body.items.map((i: { metadata: { name: string } }) => i.metadata.name)).toEqual(["a"]);
    expect(r.body.metadata.resourceVersion).toBe(a.body.metadata.resourceVersion);
  });
});

describe("watch", () => {
  it("streams ADDED, MODIFIED and DELETED from a resourceVersion", async () => {
    const list = await api(server, "GET", CM);
    const w = await watch(`${CM}?watch=true&resourceVersion=${list.body.metadata.resourceVersion}`);
    expect(w.status).toBe(200);
    await api(server, "POST", CM, configMap("a"));
    await api(server, "PATCH", `${CM}/a`, { data: { k: "v" } }, merge);
    await api(server, "DELETE", `${CM}/a`);
    const events = await w.count(3);
    expect(events.map((e) => e.type)).toEqual(["ADDED", "MODIFIED", "DELETED"]);
    expect(events[0]?.object).toMatchObject({ kind: "ConfigMap", apiVersion: "v1" });
    const rvs = events.map((e) => Number(e.object.metadata.resourceVersion));
    expect(rvs[1]).toBeGreaterThan(rvs[0] as number);
    expect(rvs[2]).toBeGreaterThan(rvs[1] as number);
  });

  it("replays events after an older resourceVersion still in the history", async () => {
    const a = await api(server, "POST", CM, configMap("a"));
    await api(server, "POST", CM, configMap("b"));
    const w = await watch(`${CM}?watch=1&resourceVersion=${a.body.metadata.resourceVersion}`);
    expect((await w.count(1)).map((e) => [e.type, e.object.metadata.name])).toEqual([["ADDED", "b"]]);
  });

  it("starts with synthetic ADDED events when no resourceVersion is given", async () => {
    await api(server, "POST", CM, configMap("a"));
    await api(server, "POST", CM, configMap("b"));
    const w = await watch(`${CM}?watch=true`);
    await w.count(2);
    await api(server, "POST", CM, configMap("c"));
    await w.count(3);
    expect(w.summary()).toEqual([["ADDED", "a"], ["ADDED", "b"], ["ADDED", "c"]]);
  });

  it("sends an ERROR event with 410 Expired for a resourceVersion older than the history, then ends", async () => {
    const first = await api(server, "POST", CM, configMap("a"));
    for (let i = 0; i < 6; i++) await api(server, "PATCH", `${CM}/a`, { data: { i: String(i) } }, merge);
    const w = await watch(`${CM}?watch=true&resourceVersion=${first.body.metadata.resourceVersion}`);
    expect(w.status).toBe(200);
    await w.until((x) => x.ended, "stream end");
    expect(w.events).toHaveLength(1);
    expect(w.events[0]?.type).toBe("ERROR");
    expect(w.events[0]?.object).toMatchObject({ kind: "Status", apiVersion: "v1", status: "Failure", reason: "Expired", code: 410 });
    expect(w.events[0]?.object.message).toMatch(/^too old resource version: \d+ \(\d+\)$/);
  });

  it("ends the stream after timeoutSeconds", async () => {
    const w = await watch(`${CM}?watch=true&timeoutSeconds=1`);
    await w.until((x) => x.ended, "stream end", 5000);
    expect(server.activeWatches()).toBe(0);
  });

  it("sends BOOKMARK events only when allowWatchBookmarks is set", async () => {
    const rv = (await api(server, "GET", CM)).body.metadata.resourceVersion;
    const withBookmarks = await watch(`${CM}?watch=true&resourceVersion=${rv}&allowWatchBookmarks=true`);
    const without = await watch(`${CM}?watch=true&resourceVersion=${rv}`);
    await api(server, "POST", "/api/v1/namespaces/default/secrets", { apiVersion: "v1", kind: "Secret", metadata: { name: "s" } });
    server.sendBookmarks();
    await api(server, "POST", CM, configMap("after"));
    await withBookmarks.count(2);
    await without.count(1);
    expect(withBookmarks.events[0]).toEqual({ type: "BOOKMARK", object: { kind: "ConfigMap", apiVersion: "v1", metadata: { resourceVersion: String(server.resourceVersion - 1), creationTimestamp: null } } });
    expect(without.summary()).toEqual([["ADDED", "after"]]);
  });

  it("turns updates across a label selector into DELETED and ADDED", async () => {
    await api(server, "POST", CM, configMap("a", {}, { labels: { app: "x" } }));
    const rv = (await api(server, "GET", CM)).body.metadata.resourceVersion;
    const w = await watch(`${CM}?watch=true&resourceVersion=${rv}&labelSelector=app%3Dx`);
    await api(server, "PATCH", `${CM}/a`, { data: { n: "1" } }, merge);
    await api(server, "PATCH", `${CM}/a`, { metadata: { labels: { app: "y" } } }, merge);
    await api(server, "PATCH", `${CM}/a`, { data: { n: "2" } }, merge);
    await api(server, "PATCH", `${CM}/a`, { metadata: { labels: { app: "x" } } }, merge);
    await w.count(3);
    expect(w.events.map((e) => e.type)).toEqual(["MODIFIED", "DELETED", "ADDED"]);
    expect(w.events[1]?.object.metadata.labels).toEqual({ app: "x" });
    expect(w.events[2]?.object.data).toEqual({ n: "2" });
  });

  it("turns updates across a field selector into DELETED and ADDED", async () => {
    await api(server, "POST", PODS, pod("p"));
    const rv = (await api(server, "GET", PODS)).body.metadata.resourceVersion;
    const w = await watch(`${PODS}?watch=true&resourceVersion=${rv}&fieldSelector=status.phase%3DRunning`);
    await api(server, "PATCH", `${PODS}/p/status`, { status: { phase: "Running" } }, merge);
    await api(server, "PATCH", `${PODS}/p/status`, { status: { phase: "Failed" } }, merge);
    await w.count(2);
    expect(w.summary()).toEqual([["ADDED", "p"], ["DELETED", "p"]]);
  });

  it("marks the end of initial events with a bookmark when sendInitialEvents is set", async () => {
    await api(server, "POST", CM, configMap("a"));
    const w = await watch(`${CM}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true`);
    await w.count(2);
    expect(w.events[0]?.type).toBe("ADDED");
    expect(w.events[1]?.type).toBe("BOOKMARK");
    expect(w.events[1]?.object.metadata.annotations).toEqual({ "k8s.io/initial-events-end": "true" });
  });

  it("filters a namespaced watch to its namespace", async () => {
    await api(server, "POST", "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "other" } });
    const rv = server.resourceVersion;
    const w = await watch(`${CM}?watch=true&resourceVersion=${rv}`);
    await api(server, "POST", "/api/v1/namespaces/other/configmaps", configMap("elsewhere"));
    await api(server, "POST", CM, configMap("here"));
    await w.count(1);
    expect(w.summary()).toEqual([["ADDED", "here"]]);
  });
});
