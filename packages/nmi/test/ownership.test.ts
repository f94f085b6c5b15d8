// Fail closed across restarts: on SIGTERM NMI reads its DaemonSet (through its own pod's ownerReference) and
// removes its iptables rules only for an uninstall or a node the DaemonSet no longer targets. Against the
// testbed's API server; the last tests run a whole NMI with real iptables rules in a network namespace.
import pino from "pino";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { isCleanupCommand, parseCliOptions } from "../src/cli-options";
import { execRunner } from "../src/interception/command-runner";
import { IptablesManager, NMI_CHAIN } from "../src/interception/iptables-manager";
import { InterceptionOwnership } from "../src/interception/ownership";
import { Cluster, NODE } from "./helpers/cluster";
import { NetnsSet, deleteStaleNamespaces, netnsUnavailableReason, sh } from "./helpers/netns";

const logger = pino({ level: "silent" });
const NS = "kube-system";
const DS = "podidentity-nmi";
const POD = "podidentity-nmi-x7k2p";

/** The rendered NMI DaemonSet's placement (packages/install/src/nmi-workload.ts): Linux nodes, every taint tolerated. */
function daemonSet(placement: Record<string, unknown> = { nodeSelector: { "kubernetes.io/os": "linux" }, tolerations: [{ operator: "Exists" }] }): Record<string, unknown> {
  const labels = { "app.kubernetes.io/name": "podidentity", "app.kubernetes.io/component": "nmi" };
  return {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name: DS, namespace: NS, labels },
    spec: { selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { hostNetwork: true, containers: [{ name: "nmi", image: "podidentity-nmi:0.1.0" }], ...placement } } },
  };
}

function seedNmiPod(c: Cluster, owner: { kind: string; apiVersion: string; name: string } | null = { kind: "DaemonSet", apiVersion: "apps/v1", name: DS }): void {
  const uid = (c.kube.getObject("daemonsets.apps", NS, DS)?.["metadata"] as { uid?: string } | undefined)?.uid ?? "00000000-0000-0000-0000-000000000001";
  c.kube.seed({
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: POD,
      namespace: NS,
      ...(owner !== null && { ownerReferences: [{ ...owner, uid, controller: true, blockOwnerDeletion: true }] }),
    },
    spec: { nodeName: NODE, hostNetwork: true, containers: [{ name: "nmi", image: "podidentity-nmi:0.1.0" }] },
    status: { phase: "Running", podIP: "10.240.0.4" },
  });
}

function ownership(c: Cluster, options: { podName?: string; podNamespace?: string; timeoutMs?: number } = {}): InterceptionOwnership {
  return new InterceptionOwnership({ client: c.kubeClient, nodeName: NODE, podName: POD, podNamespace: NS, timeoutMs: 5_000, logger, ...options });
}

describe("InterceptionOwnership: should this node keep interception when NMI stops?", () => {
  let c: Cluster;
  beforeEach(async () => {
    c = await Cluster.start();
    c.kube.patchObject("nodes", undefined, NODE, { metadata: { labels: { "kubernetes.io/os": "linux" } } });
    c.kube.seed(daemonSet());
    seedNmiPod(c);
  });
  afterEach(async () => c.close());

  it("a restart or rollout (DaemonSet present, node targeted) keeps the rules, after finding the DaemonSet through the pod's ownerReference", async () => {
    const o = ownership(c);
    expect(await o.resolveOwner()).toEqual({ namespace: NS, name: DS });
    expect(await o.decide()).toMatchObject({ action: "keep", reason: "node-targeted" });
    const reads = c.kube.requests.filter((r) => r.verb === "get").map((r) => `${r.resource} ${r.namespace ?? ""}/${r.name}`);
    expect(reads).toEqual([`pods ${NS}/${POD}`, `daemonsets ${NS}/${DS}`, `nodes /${NODE}`]);
  });

  it("`kubectl delete pod` (the pod gone, the DaemonSet not) keeps the rules: the owner found at start is remembered", async () => {
    const o = ownership(c);
    await o.resolveOwner();
    // the state once its grace period is over: the object gone (during it, the pod is still there to read)
    c.kube.deleteObject("pods", NS, POD, { gracePeriodSeconds: 0 });
    expect(await o.decide()).toMatchObject({ action: "keep", reason: "node-targeted" });
  });

  it("the DaemonSet deleted (uninstall) removes the rules", async () => {
    const o = ownership(c);
    await o.resolveOwner();
    c.kube.deleteObject("daemonsets.apps", NS, DS);
    expect(await o.decide()).toMatchObject({ action: "remove", reason: "daemonset-deleted" });
  });

  it("the DaemonSet being deleted (deletionTimestamp, foreground deletion) removes the rules", async () => {
    c.kube.patchObject("daemonsets.apps", NS, DS, { metadata: { finalizers: ["foregroundDeletion"] } });
    c.kube.deleteObject("daemonsets.apps", NS, DS);
    expect(c.kube.getObject("daemonsets.apps", NS, DS)?.["metadata"]).toHaveProperty("deletionTimestamp");
    expect(await ownership(c).decide()).toMatchObject({ action: "remove", reason: "daemonset-deleting" });
  });

  it("the node relabelled out of the nodeSelector removes the rules", async () => {
    c.kube.patchObject("nodes", undefined, NODE, { metadata: { labels: { "kubernetes.io/os": "windows" } } });
    const decision = await ownership(c).decide();
    expect(decision).toMatchObject({ action: "remove", reason: "node-not-selected" });
    expect(decision.detail).toContain("kubernetes.io/os=windows");
  });

  it("required node affinity and taints count as the DaemonSet controller counts them", async () => {
    c.kube.deleteObject("daemonsets.apps", NS, DS);
    c.kube.seed(
      daemonSet({
        affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: "pool", operator: "In", values: ["apps"] }] }] } } },
        tolerations: [{ key: "dedicated", operator: "Equal", value: "apps" }],
      }),
    );
    expect(await ownership(c).decide()).toMatchObject({ action: "remove", reason: "node-affinity-mismatch" });
    c.kube.patchObject("nodes", undefined, NODE, { metadata: { labels: { pool: "apps" } }, spec: { taints: [{ key: "dedicated", value: "apps", effect: "NoSchedule" }, { key: "podidentity.io/nmi-not-ready", effect: "NoSchedule" }] } });
    expect(await ownership(c).decide()).toMatchObject({ action: "keep", reason: "node-targeted" });
    c.kube.patchObject("nodes", undefined, NODE, { spec: { taints: [{ key: "dedicated", value: "gpu", effect: "NoExecute" }] } });
    expect(await ownership(c).decide()).toMatchObject({ action: "remove", reason: "taint-not-tolerated" });
  });

  it("a 403 (RBAC without get daemonsets) keeps the rules and says what permission is missing", async () => {
    c.kube.failNext({ verb: "get", resource: "daemonsets", code: 403 });
    const decision = await ownership(c).decide();
    expect(decision).toMatchObject({ action: "keep", reason: "api-forbidden" });
    expect(decision.detail).toMatch(/needs get on its pod and on its DaemonSet/);
  });

  it("an API server slower than the deadline keeps the rules (bounded: decide() does not wait for it)", async () => {
    c.kube.addLatency({ verb: "get", resource: "daemonsets", latencyMs: 30_000 });
    const decision = await ownership(c, { timeoutMs: 200 }).decide();
    expect(decision).toMatchObject({ action: "keep", reason: "api-timeout" });
    c.kube.clearFaults();
  });

  it("an unreachable API server keeps the rules", async () => {
    const o = ownership(c);
    await o.resolveOwner();
    await c.kube.close();
    expect(await o.decide()).toMatchObject({ action: "keep", reason: "api-unavailable" });
  });

  it("without a pod name, or with a pod no DaemonSet controls, there is no owner to ask: the rules stay", async () => {
    expect(await ownership(c, { podName: "" }).decide()).toMatchObject({ action: "keep", reason: "owner-unknown" });
    // replaced by a pod of the same name: the old one must be gone first (a force deletion skips its grace period)
    c.kube.deleteObject("pods", NS, POD, { gracePeriodSeconds: 0 });
    seedNmiPod(c, null);
    expect(await ownership(c).decide()).toMatchObject({ action: "keep", reason: "owner-not-daemonset" });
  });
});

describe("the pod that leads to the DaemonSet, from the command line", () => {
  it("comes from env POD_NAME / POD_NAMESPACE (the rendered DaemonSet's downward API), flags winning; absent stays absent", () => {
    const env = { NODE_NAME: NODE, POD_NAME: POD, POD_NAMESPACE: NS };
    expect(parseCliOptions([], env).config).toMatchObject({ podName: POD, podNamespace: NS });
    expect(parseCliOptions(["--pod-name", "other", "--pod-namespace", "podidentity"], env).config).toMatchObject({ podName: "other", podNamespace: "podidentity" });
    const bare = parseCliOptions([], { NODE_NAME: NODE, POD_NAME: "" }).config;
    expect(bare).not.toHaveProperty("podName");
    expect(bare).not.toHaveProperty("podNamespace");
  });

  it("`cleanup` as the first word is the cleanup command, anything else serves", () => {
    expect(isCleanupCommand(["cleanup"])).toBe(true);
    expect(isCleanupCommand(["--node", "cleanup"])).toBe(false);
    expect(isCleanupCommand([])).toBe(false);
  });
});

const reason = await netnsUnavailableReason();
if (reason !== undefined && process.env["CI"] === "true") throw new Error(`NMI shutdown tests must run under CI=true, but cannot: ${reason}`);

describe.skipIf(reason !== undefined)("Nmi.stop() with real iptables rules (network namespace)", () => {
  let netns: NetnsSet;
  let c: Cluster;
  beforeAll(deleteStaleNamespaces);
  beforeEach(async () => {
    netns = new NetnsSet();
    c = await Cluster.start();
    c.kube.patchObject("nodes", undefined, NODE, { metadata: { labels: { "kubernetes.io/os": "linux" } } });
    c.kube.seed(daemonSet());
    seedNmiPod(c);
  });
  afterEach(async () => {
    await c.close();
    await netns.cleanup();
  });
  afterAll(deleteStaleNamespaces);

  async function nmiInNamespace(): Promise<{ ns: string; stop: () => ReturnType<NonNullable<Cluster["nmi"]>["stop"]> }> {
    const ns = await netns.add("node");
    const interception = new IptablesManager({ metadataIp: "169.254.169.254", metadataPort: 80, targetIp: "127.0.0.1", targetPort: 2579, run: execRunner(["ip", "netns", "exec", ns]), logger });
    const nmi = await c.startNmi({ interception, podName: POD, podNamespace: NS });
    return { ns, stop: () => nmi.stop() };
  }
  const natRules = async (ns: string): Promise<string> => sh(["ip", "netns", "exec", ns, "iptables", "-t", "nat", "-S"]);

  it("stops keeping the rules while its DaemonSet still targets the node", async () => {
    const { ns, stop } = await nmiInNamespace();
    expect(await natRules(ns)).toContain(`-A PREROUTING -j ${NMI_CHAIN}`);
    expect(await stop()).toMatchObject({ interception: "kept", reason: "node-targeted" });
    expect(await natRules(ns)).toContain(`-A PREROUTING -j ${NMI_CHAIN}`);
  });

  it("stops removing the rules once its DaemonSet is deleted", async () => {
    const { ns, stop } = await nmiInNamespace();
    c.kube.deleteObject("daemonsets.apps", NS, DS);
    expect(await stop()).toMatchObject({ interception: "removed", reason: "daemonset-deleted" });
    expect(await natRules(ns)).not.toContain(NMI_CHAIN);
    expect(await sh(["ip", "netns", "exec", ns, "iptables", "-t", "filter", "-S"])).not.toContain(NMI_CHAIN);
  });
});
