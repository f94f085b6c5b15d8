import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KubernetesObject, V1ConfigMap, V1Pod } from "@kubernetes/client-node";
import { ApiextensionsV1Api, ApiException, CoreV1Api, CustomObjectsApi, KubeConfig, makeInformer, PatchStrategy, setHeaderOptions, Watch } from "@kubernetes/client-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { KubeApiServer } from "../../src/kube/kube-api-server";
import { KubeApiServer as Server } from "../../src/kube/kube-api-server";
import { TestbedCa } from "../../src/tls/testbed-ca";
import { configMap, eventually, pod } from "./helpers/api";
import { azureIdentity, azureIdentityCrd } from "./helpers/crd";

const MIC = "system:serviceaccount:kube-system:podidentity-mic";
let server: KubeApiServer;
let dir: string;
let kc: KubeConfig;
const cleanups: Array<() => void> = [];

beforeEach(async () => {
  const ca = await TestbedCa.create();
  server = new Server({ tls: ca, tokens: { "mic-token": MIC }, watchHistorySize: 3 });
  await server.start();
  dir = await mkdtemp(join(tmpdir(), "kube-client-node-"));
  await server.writeKubeconfig(join(dir, "kubeconfig"), { user: MIC });
  kc = new KubeConfig();
  kc.loadFromFile(join(dir, "kubeconfig"));
});
afterEach(async () => {
  for (const c of cleanups.splice(0)) c();
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

function statusOf(err: unknown): { code: number; reason: string } {
  expect(err).toBeInstanceOf(ApiException);
  const e = err as ApiException<unknown>;
  const body = typeof e.body === "string" ? (JSON.parse(e.body) as { reason: string }) : (e.body as { reason: string });
  return { code: e.code, reason: body.reason };
}

describe("@kubernetes/client-node against the emulator", () => {
  it("CoreV1Api: create, read, list with selectors, patch, status, delete, typed errors", async () => {
    const core = kc.makeApiClient(CoreV1Api);
    const created = await core.createNamespacedPod({ namespace: "default", body: pod("web", { labels: { app: "web" }, nodeName: "node-1" }) as V1Pod });
    expect(created.metadata?.uid).toBeTruthy();
    expect(created.status?.phase).toBe("Pending");
    await core.createNamespacedPod({ namespace: "default", body: pod("db", { labels: { app: "db" } }) as V1Pod });
    const listed = await core.listNamespacedPod({ namespace: "default", labelSelector: "app in (web)" });
    expect(listed.items.map((p) => p.metadata?.name)).toEqual(["web"]);
    const onNode = await core.listPodForAllNamespaces({ fieldSelector: "spec.nodeName=node-1" });
    expect(onNode.items.map((p) => p.metadata?.name)).toEqual(["web"]);
    const patched = await core.patchNamespacedPod({ name: "web", namespace: "default", body: { metadata: { annotations: { a: "b" } } } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
    expect(patched.metadata?.annotations).toEqual({ a: "b" });
    const withStatus = await core.replaceNamespacedPodStatus({ name: "web", namespace: "default", body: { ...patched, status: { phase: "Running", podIP: "10.0.0.7" } } });
    expect(withStatus.status?.podIP).toBe("10.0.0.7");
    await expect(core.createNamespacedPod({ namespace: "default", body: pod("web") as V1Pod })).rejects.toSatisfy((e) => statusOf(e).code === 409 && statusOf(e).reason === "AlreadyExists");
    await expect(core.replaceNamespacedPod({ name: "web", namespace: "default", body: created })).rejects.toSatisfy((e) => statusOf(e).reason === "Conflict");
    // a pod on a node is deleted gracefully: kept, marked, until its kubelet's final delete (grace period 0)
    const terminating = await core.deleteNamespacedPod({ name: "web", namespace: "default" });
    expect(terminating.metadata?.deletionGracePeriodSeconds).toBe(30);
    expect((await core.readNamespacedPod({ name: "web", namespace: "default" })).metadata?.deletionTimestamp).toBeInstanceOf(Date);
    await core.deleteNamespacedPod({ name: "web", namespace: "default", gracePeriodSeconds: 0 });
    await expect(core.readNamespacedPod({ name: "web", namespace: "default" })).rejects.toSatisfy((e) => statusOf(e).code === 404);
    expect(server.requestCounts({ user: MIC })).toMatchObject({ "create pods": 3, "list pods": 2, "patch pods": 1, "update pods/status": 1, "update pods": 1, "delete pods": 2, "get pods": 2 });
  });

  it("CustomObjectsApi: custom resources after their CRD is created", async () => {
    // client-node's typed CRD model renames schema keywords (`_default`), so the raw CRD goes in through the store.
    server.seed(azureIdentityCrd());
    const crd = await kc.makeApiClient(ApiextensionsV1Api).readCustomResourceDefinition({ name: "azureidentities.aadpodidentity.k8s.io" });
    expect(crd.status?.conditions?.find((c) => c.type === "Established")?.status).toBe("True");
    const custom = kc.makeApiClient(CustomObjectsApi);
    const group = "aadpodidentity.k8s.io";
    await custom.createNamespacedCustomObject({ group, version: "v1", namespace: "default", plural: "azureidentities", body: azureIdentity("id1", { type: 0, ResourceID: "/r", ClientID: "c", unknown: 1 }) });
    const got = (await custom.getNamespacedCustomObject({ group, version: "v1", namespace: "default", plural: "azureidentities", name: "id1" })) as { spec: Record<string, unknown> };
    expect(got.spec).toEqual({ type: 0, ResourceID: "/r", ClientID: "c", replicas: 1 });
    await custom.patchNamespacedCustomObject({ group, version: "v1", namespace: "default", plural: "azureidentities", name: "id1", body: { spec: { clientID: "c2" } } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
    await custom.patchNamespacedCustomObjectStatus({ group, version: "v1", namespace: "default", plural: "azureidentities", name: "id1", body: { status: { state: "Assigned" } } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
    const list = (await custom.listNamespacedCustomObject({ group, version: "v1", namespace: "default", plural: "azureidentities" })) as { items: Array<{ spec: { clientID: string }; status: { state: string } }> };
    expect(list.items.map((i) => [i.spec.clientID, i.status.state])).toEqual([["c2", "Assigned"]]);
  });

  it("Watch: streams events from a resourceVersion", async () => {
    const core = kc.makeApiClient(CoreV1Api);
    const rv = (await core.listNamespacedConfigMap({ namespace: "default" })).metadata?.resourceVersion;
    const seen: string[] = [];
    const req = await new Watch(kc).watch(
      "/api/v1/namespaces/default/configmaps",
      { resourceVersion: rv },
      (type, obj: V1ConfigMap) => seen.push(`${type} ${obj.metadata?.name}`),
      () => undefined,
    );
    cleanups.push(() => req.abort());
    await core.createNamespacedConfigMap({ namespace: "default", body: configMap("w") });
    await core.deleteNamespacedConfigMap({ name: "w", namespace: "default" });
    await eventually(() => (seen.length >= 2 ? true : undefined), "two events");
    expect(seen).toEqual(["ADDED w", "DELETED w"]);
  });

  it("makeInformer: lists, follows the watch, and relists after 410 Gone", async () => {
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespacedConfigMap({ namespace: "default", body: configMap("before") });
    const informer = makeInformer(kc, "/api/v1/namespaces/default/configmaps", () => core.listNamespacedConfigMap({ namespace: "default" }));
    const events: string[] = [];
    const errors: unknown[] = [];
    informer.on("add", (o: KubernetesObject) => events.push(`add ${o.metadata?.name}`));
    informer.on("update", (o: KubernetesObject) => events.push(`update ${o.metadata?.name}`));
    informer.on("delete", (o: KubernetesObject) => events.push(`delete ${o.metadata?.name}`));
    informer.on("error", (e: unknown) => errors.push(e));
    await informer.start();
    cleanups.push(() => void informer.stop());
    await eventually(() => (server.activeWatches("configmaps") === 1 ? true : undefined), "informer watching");
    await core.createNamespacedConfigMap({ namespace: "default", body: configMap("live") });
    await eventually(() => (informer.get("live", "default") ? true : undefined), "live in cache");
    expect(server.countRequests({ verb: "list", resource: "configmaps" })).toBe(1);

    // Hold the informer's next watch request while the history moves past its resourceVersion.
    server.addLatency({ verb: "watch", resource: "configmaps", latencyMs: 1000 });
    server.dropWatches();
    await eventually(() => (server.countRequests({ verb: "watch", resource: "configmaps" }) === 2 ? true : undefined), "re-watch requested");
    server.seed(configMap("during-gap"));
    server.deleteObject("configmaps", "default", "before");
    for (let i = 0; i < 4; i++) server.patchObject("configmaps", "default", "live", { data: { i: String(i) } });
    server.clearFaults();

    await eventually(() => (informer.get("during-gap", "default") && !informer.get("before", "default") ? true : undefined), "relisted cache", 10_000);
    expect(server.countRequests({ verb: "list", resource: "configmaps" })).toBe(2);
    const expiredWatch = server.requests.filter((r) => r.verb === "watch")[1];
    expect(expiredWatch?.status).toBe(200);
    expect(informer.list("default").map((o) => o.metadata?.name).sort()).toEqual(["during-gap", "live"]);
    expect(events).toContain("add during-gap");
    expect(events).toContain("delete before");
    expect(errors).toEqual([]);
  });
});
