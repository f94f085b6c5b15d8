import { AzureCloud, KubeApiServer, renderKubeconfig } from "@podidentity/testbed";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KubeApiError, KubeClient, ResourceInformer, type KubeObject } from "../src/index";
import { eventually } from "./helpers/cluster";

let cloud: AzureCloud;
let kube: KubeApiServer;
const clients: KubeClient[] = [];

beforeEach(async () => {
  cloud = await AzureCloud.create();
  kube = new KubeApiServer({ tls: cloud.ca, tokens: { "nmi-token": "system:serviceaccount:kube-system:nmi" } });
  await kube.start();
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  await kube.close();
  await cloud.close();
});

function client(token: string): KubeClient {
  const c = KubeClient.fromKubeconfig(renderKubeconfig({ server: kube.url, caPem: cloud.ca.certPem, token }));
  clients.push(c);
  return c;
}

describe("KubeClient", () => {
  it("authenticates with the kubeconfig's bearer token over TLS with its CA", async () => {
    const list = await client("nmi-token").list("/api/v1/namespaces");
    expect(list.items.map((n) => n.metadata?.name)).toContain("default");
    expect(kube.requests.at(-1)?.user).toBe("system:serviceaccount:kube-system:nmi");
  });

  it("turns refusals into KubeApiError with the status", async () => {
    await expect(client("wrong").list("/api/v1/namespaces")).rejects.toMatchObject({ name: "KubeApiError", statusCode: 401 });
    const error = await client("nmi-token").get("/api/v1/namespaces/nope").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KubeApiError);
    expect((error as KubeApiError).statusCode).toBe(404);
  });

  it("reads YAML kubeconfigs and refuses one without a server", () => {
    const yaml = `apiVersion: v1\nkind: Config\ncurrent-context: a\nclusters:\n- name: c\n  cluster:\n    server: https://10.0.0.1:6443\n    insecure-skip-tls-verify: true\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\nusers:\n- name: u\n  user: {token: abc}\n`;
    expect(KubeClient.fromKubeconfig(yaml).server).toBe("https://10.0.0.1:6443");
    expect(() => KubeClient.fromKubeconfig("apiVersion: v1\nkind: Config\n")).toThrow(/no cluster server/);
  });

  it("informer: lists, then follows adds, updates and deletes through the watch", async () => {
    const informer = new ResourceInformer<KubeObject>({ name: "configmaps", client: client("nmi-token"), path: "/api/v1/configmaps", logger: pino({ level: "silent" }) });
    kube.seed({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "a", namespace: "default" }, data: { k: "1" } });
    await informer.start();
    expect(informer.get("a", "default")).toBeDefined();
    const seen: string[] = [];
    informer.on("add", (o) => seen.push(`add ${o.metadata?.name}`));
    informer.on("update", (o) => seen.push(`update ${o.metadata?.name}`));
    informer.on("delete", (o) => seen.push(`delete ${o.metadata?.name}`));
    kube.seed({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "b", namespace: "default" } });
    kube.patchObject("configmaps", "default", "a", { data: { k: "2" } });
    kube.deleteObject("configmaps", "default", "b");
    await eventually(() => (seen.length === 3 ? true : undefined), "three events");
    expect(seen).toEqual(["add b", "update a", "delete b"]);
    await informer.stop();
  });

  it("informer: start() fails when stopped before the first sync", async () => {
    kube.failNext({ verb: "list", resource: "configmaps", count: 100 });
    const informer = new ResourceInformer<KubeObject>({ name: "configmaps", client: client("nmi-token"), path: "/api/v1/configmaps", logger: pino({ level: "silent" }), minBackoffMs: 10 });
    const started = informer.start();
    await eventually(() => (kube.countRequests({ verb: "list", resource: "configmaps" }) >= 2 ? true : undefined), "retries");
    await informer.stop();
    await expect(started).rejects.toThrow(/stopped before the first sync/);
  });
});
