import type { KubeApiServer } from "@podidentity/testbed";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Informer, KubeApiError, type KubeClient, type KubeObject } from "../src/index";
import { clientFor, configMap, rawServer, startKube, StepClock } from "./helpers/cluster";

let kube: KubeApiServer;
let client: KubeClient;
const informers: Informer<KubeObject, unknown>[] = [];

beforeEach(async () => {
  kube = await startKube();
  client = clientFor(kube.url);
});
afterEach(async () => {
  for (const i of informers.splice(0)) await i.stop();
  await client.close();
  await kube.close();
});

const CONFIGMAPS = "/api/v1/namespaces/default/configmaps";

function informer<P = KubeObject>(options: Partial<ConstructorParameters<typeof Informer<KubeObject, P>>[1]> = {}): Informer<KubeObject, P> {
  const i = new Informer<KubeObject, P>(client, { path: CONFIGMAPS, minBackoffMs: 10, maxBackoffMs: 50, ...options });
  informers.push(i as Informer<KubeObject, unknown>);
  return i;
}

const names = (i: Informer<KubeObject, KubeObject>): string[] => i.list().map((o) => o.metadata?.name ?? "").sort();

describe("Informer", () => {
  it("lists in pages of `limit` with continue tokens, then watches from the list's resourceVersion", async () => {
    for (let n = 0; n < 12; n++) kube.seed(configMap(`cm-${String(n).padStart(2, "0")}`));
    const i = informer({ pageSize: 5 });
    i.start();
    await i.synced;
    expect(i.size).toBe(12);
    expect(i.stats.pages).toBe(3);
    const lists = kube.requests.filter((r) => r.verb === "list" && r.resource === "configmaps");
    expect(lists.map((r) => new URLSearchParams(r.query).get("limit"))).toEqual(["5", "5", "5"]);
    expect(new URLSearchParams(lists[1]?.query).get("continue")).not.toBeNull();
    await vi.waitFor(() => expect(kube.activeWatches("configmaps")).toBe(1));
    const watch = kube.requests.find((r) => r.verb === "watch");
    expect(new URLSearchParams(watch?.query).get("allowWatchBookmarks")).toBe("true");
    kube.seed(configMap("late"));
    await vi.waitFor(() => expect(i.get("default/late")).toBeDefined());
  });

  it("keeps only what the projection returns and tells handlers about adds, updates and deletes", async () => {
    kube.seed(configMap("a", { colour: "red", big: "x".repeat(1000) }));
    const i = informer<{ name: string; colour: string | undefined }>({
      project: (o) => ({ name: o.metadata?.name ?? "", colour: (o["data"] as Record<string, string> | undefined)?.["colour"] }),
    });
    const seen: string[] = [];
    i.addHandlers({
      add: (o) => seen.push(`add ${o.name} ${o.colour}`),
      update: (o, old) => seen.push(`update ${o.name} ${old.colour}->${o.colour}`),
      delete: (o) => seen.push(`delete ${o.name}`),
    });
    i.start();
    await i.synced;
    expect(i.get("default/a")).toEqual({ name: "a", colour: "red" });
    expect([...i.store]).toEqual([["default/a", { name: "a", colour: "red" }]]);
    expect([i.store.size, i.store.has("default/a"), [...i.store.values()]]).toEqual([1, true, [{ name: "a", colour: "red" }]]);
    await vi.waitFor(() => expect(kube.activeWatches("configmaps")).toBe(1));
    kube.patchObject("configmaps", "default", "a", { data: { colour: "blue" } });
    kube.deleteObject("configmaps", "default", "a");
    await vi.waitFor(() => expect(seen).toEqual(["add a red", "update a red->blue", "delete a"]));
    expect(i.size).toBe(0);
  });

  it("narrows the list and the watch with label and field selectors", async () => {
    kube.seed({ ...configMap("keep"), metadata: { name: "keep", namespace: "default", labels: { app: "x" } } });
    kube.seed(configMap("skip"));
    const i = informer({ labelSelector: "app=x", fieldSelector: "metadata.name=keep" });
    i.start();
    await i.synced;
    expect(names(i)).toEqual(["keep"]);
    await vi.waitFor(() => expect(kube.activeWatches("configmaps")).toBe(1));
    const watch = new URLSearchParams(kube.requests.find((r) => r.verb === "watch")?.query);
    expect([watch.get("labelSelector"), watch.get("fieldSelector")]).toEqual(["app=x", "metadata.name=keep"]);
  });

  it("relists on 410 Gone and reports what vanished meanwhile as deleted", async () => {
    kube.seed(configMap("stays"));
    kube.seed(configMap("goes"));
    const i = informer();
    const deleted: string[] = [];
    i.addHandlers({ delete: (o) => deleted.push(o.metadata?.name ?? "") });
    i.start();
    await i.synced;
    await vi.waitFor(() => expect(kube.activeWatches("configmaps")).toBe(1));
    // While the informer is disconnected, history is compacted and an object goes: its watch resumes into a 410.
    kube.addLatency({ verb: "watch", resource: "configmaps", latencyMs: 200 });
    kube.dropWatches({ abrupt: true });
    kube.deleteObject("configmaps", "default", "goes");
    kube.compactHistory();
    kube.clearFaults();
    kube.seed(configMap("new"));
    await vi.waitFor(() => expect(names(i as Informer<KubeObject, KubeObject>)).toEqual(["new", "stays"]));
    expect(deleted).toEqual(["goes"]);
    expect(i.stats.relists).toBeGreaterThanOrEqual(1);
  });

  it("relists at once when the watch itself reports 410 in an ERROR event", async () => {
    kube.seed(configMap("a"));
    const i = informer();
    i.start();
    await i.synced;
    await vi.waitFor(() => expect(kube.activeWatches("configmaps")).toBe(1));
    // Synchronous, so no event reaches the informer in between: its resourceVersion is now before the history.
    kube.dropWatches();
    kube.seed(configMap("b"));
    kube.compactHistory();
    await vi.waitFor(() => expect(names(i as Informer<KubeObject, KubeObject>)).toEqual(["a", "b"]));
    expect(i.stats.failures).toBe(0);
    expect(i.stats.relists).toBe(1);
  });

  it.each([
    ["cleanly (end of stream)", false],
    ["abruptly (socket destroyed)", true],
  ])("recovers after the server drops its watch %s and converges on what changed meanwhile", async (_label, abrupt) => {
    kube.seed(configMap("a"));
    const i = informer();
    i.start();
    await i.synced;
    await vi.waitFor(() => expect(kube.activeWatches("configmaps")).toBe(1));
    expect(kube.dropWatches({ abrupt })).toBe(1);
    kube.seed(configMap("b"));
    kube.deleteObject("configmaps", "default", "a");
    await vi.waitFor(() => expect(names(i as Informer<KubeObject, KubeObject>)).toEqual(["b"]));
    await vi.waitFor(() => expect(kube.activeWatches("configmaps")).toBe(1));
    expect(i.stats.watches).toBeGreaterThanOrEqual(2);
    if (abrupt) expect(i.stats.failures).toBeGreaterThanOrEqual(1);
  });

  it("converges after the API server stops and starts again on the same port", async () => {
    kube.seed(configMap("before"));
    const i = informer();
    i.start();
    await i.synced;
    await vi.waitFor(() => expect(kube.activeWatches("configmaps")).toBe(1));
    const port = kube.port;
    await kube.close();
    // Down: requests are refused and the informer keeps retrying with backoff.
    await vi.waitFor(() => expect(i.stats.failures).toBeGreaterThanOrEqual(2));
    kube.seed(configMap("while-down"));
    await kube.start();
    expect(kube.port).toBe(port);
    await vi.waitFor(() => expect(names(i as Informer<KubeObject, KubeObject>)).toEqual(["before", "while-down"]));
    await vi.waitFor(() => expect(kube.activeWatches("configmaps")).toBe(1));
    kube.seed(configMap("after"));
    await vi.waitFor(() => expect(i.get("default/after")).toBeDefined());
  });

  it("converges after a restart that lost the store (resourceVersions move on: 410, relist)", async () => {
    kube.seed(configMap("old"));
    const i = informer();
    i.start();
    await i.synced;
    await vi.waitFor(() => expect(kube.activeWatches("configmaps")).toBe(1));
    await kube.restart({ keepState: false });
    kube.seed(configMap("fresh"));
    await vi.waitFor(() => expect(names(i as Informer<KubeObject, KubeObject>)).toEqual(["fresh"]));
  });

  it("retries after any error with exponential backoff capped at maxBackoffMs, on the injected clock", async () => {
    const clock = new StepClock();
    kube.failNext({ verb: "list", resource: "configmaps", code: 500, count: 6 });
    const errors: unknown[] = [];
    const i = informer({ clock, minBackoffMs: 1_000, maxBackoffMs: 8_000, onError: (e) => errors.push(e) });
    i.start();
    for (let n = 1; n <= 6; n++) {
      await vi.waitFor(() => expect(clock.pending).toBe(1));
      clock.fireNext();
    }
    await i.synced;
    expect(clock.scheduled).toEqual([1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
    expect(errors).toHaveLength(6);
    expect(errors[0]).toBeInstanceOf(KubeApiError);
    expect((errors[0] as KubeApiError).status).toBe(500);
    // A success resets the backoff: the next failure waits minBackoffMs again.
    await vi.waitFor(() => expect(kube.activeWatches("configmaps")).toBe(1));
    kube.seed(configMap("event"));
    await vi.waitFor(() => expect(i.size).toBe(1));
    kube.failNext({ verb: "watch", resource: "configmaps", code: 503 });
    kube.dropWatches({ abrupt: true });
    await vi.waitFor(() => expect(clock.pending).toBe(1));
    expect(clock.scheduled.at(-1)).toBe(1_000);
  });

  it("re-watches at once after one empty watch ends, but backs off when they keep ending within a second (client-go's short-watch rule)", async () => {
    const raw = await rawServer((req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(req.url?.includes("watch=true") ? "" : JSON.stringify({ kind: "ConfigMapList", metadata: { resourceVersion: "5" }, items: [] }));
    });
    const rawClient = clientFor(raw.url);
    const clock = new StepClock();
    const errors: unknown[] = [];
    const i = new Informer<KubeObject>(rawClient, { path: CONFIGMAPS, clock, onError: (e) => errors.push(e) });
    informers.push(i);
    try {
      i.start();
      await vi.waitFor(() => expect(clock.pending).toBe(1));
      expect([i.stats.lists, i.stats.watches, i.stats.failures]).toEqual([1, 2, 1]);
      expect((errors[0] as KubeApiError).reason).toBe("ShortWatch");
    } finally {
      await i.stop();
      await rawClient.close();
      await raw.close();
    }
  });

  it("keeps running when a handler throws, and reports the exception", async () => {
    const errors: unknown[] = [];
    const i = informer({ onError: (e) => errors.push(e) });
    const added: string[] = [];
    i.addHandlers({
      add: () => {
        throw new Error("consumer bug");
      },
    });
    i.addHandlers({ add: (o) => added.push(o.metadata?.name ?? "") });
    i.start();
    await i.synced;
    kube.seed(configMap("x"));
    await vi.waitFor(() => expect(added).toEqual(["x"]));
    expect(errors.map((e) => (e as Error).message)).toEqual(["consumer bug"]);
  });

  it("ignores watch events older than an object applied locally", async () => {
    const i = informer();
    i.start();
    await i.synced;
    const created = await client.create<KubeObject>(CONFIGMAPS, configMap("mine", { v: "1" }));
    const updated = await client.patch<KubeObject>(`${CONFIGMAPS}/mine`, { data: { v: "2" } });
    i.applyLocal(updated);
    expect((i.get("default/mine")?.["data"] as Record<string, string>)["v"]).toBe("2");
    await vi.waitFor(() => expect(i.stats.watches).toBeGreaterThanOrEqual(1));
    kube.seed(configMap("marker"));
    await vi.waitFor(() => expect(i.get("default/marker")).toBeDefined());
    // The ADDED event for v1 arrived after the local v2 and was ignored.
    expect(created.metadata?.resourceVersion).not.toBe(updated.metadata?.resourceVersion);
    expect((i.get("default/mine")?.["data"] as Record<string, string>)["v"]).toBe("2");
  });

  it("stop() ends the watch, the backoff wait and rejects synced when it never synced", async () => {
    const i = informer();
    i.start();
    await i.synced;
    await vi.waitFor(() => expect(kube.activeWatches("configmaps")).toBe(1));
    await i.stop();
    await vi.waitFor(() => expect(kube.activeWatches("configmaps")).toBe(0));

    const clock = new StepClock();
    kube.failNext({ verb: "list", resource: "configmaps", code: 500, count: 100 });
    const never = informer({ clock });
    never.start();
    await vi.waitFor(() => expect(clock.pending).toBe(1));
    await never.stop();
    expect(clock.pending).toBe(0);
    await expect(never.synced).rejects.toThrow(/stopped before the first list/);
  });
});
