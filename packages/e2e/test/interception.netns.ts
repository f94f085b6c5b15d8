// NMI's interception on a real node: its iptables rules (present while it runs, kept when it stops), the node's
// startup taint (removed only once the rules are live), instance metadata (proxied, or blocked), and what is not
// intercepted — the node itself and hostNetwork pods, as in aad-pod-identity v1.8.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TopologyNode, TopologyPod } from "@podidentity/testbed";
import { CLUSTER_USERS, NMI_NOT_READY_TAINT } from "../src/cluster-options";
import { E2eCluster, type ClusterIdentity } from "../src/e2e-cluster";
import { curlIn, curlInPod, tokenUrl } from "./helpers/pod-clients";

describe("NMI's interception on the node", () => {
  let cluster: E2eCluster;
  let id: ClusterIdentity;
  let node0: TopologyNode;
  let node1: TopologyNode;
  let earlyPod: TopologyPod;

  beforeAll(async () => {
    // Two tainted nodes and no NMI yet: NMI is started by the tests.
    cluster = await E2eCluster.start({ nodeCount: 2, startNmi: false });
    [node0, node1] = [cluster.node(0), cluster.node(1)];
    id = await cluster.bindIdentity(cluster.createIdentity("interception-id"), { selector: "web" });
    earlyPod = await cluster.addPod("early", { labels: { aadpodidbinding: "web" }, node: node0.name, waitRunning: false });
  });
  afterAll(async () => {
    await cluster?.close();
  });

  async function nmiOn(node: TopologyNode, args: string[] = []): Promise<void> {
    if (!cluster.nmi.get(node.name)?.running) await cluster.startNmi(node.name, args);
  }
  const natRules = async (node: TopologyNode): Promise<string> => (await cluster.runInNode(node, "iptables", ["-t", "nat", "-S"])).stdout;

  it("a pod created before NMI stays Pending on the tainted node; NMI removes the taint only after its rules are live, then the pod runs and is intercepted", async () => {
    const podObject = await cluster.admin.get(`/api/v1/namespaces/default/pods/early`);
    expect(podObject.status?.["phase"]).toBe("Pending");
    expect(podObject.spec?.["nodeName"]).toBeUndefined();
    expect(await natRules(node0)).not.toContain("aad-metadata");

    await nmiOn(node0);
    await earlyPod.whenRunning(10_000);
    const nmi = cluster.nmi.get(node0.name)!;
    const installed = nmi.lines.findIndex((l) => l.json?.["msg"] === "iptables interception installed");
    const taintRemoved = nmi.lines.findIndex((l) => l.json?.["msg"] === "startup taint removed: interception is live");
    expect(installed, nmi.tail()).toBeGreaterThanOrEqual(0);
    expect(taintRemoved, nmi.tail()).toBeGreaterThan(installed);
    // NMI's rules were live (its log's own clock) before it wrote the Node without the taint (the API server's log)
    const nodeWrites = cluster.kube.requests.filter((r) => r.user === CLUSTER_USERS.nmi && r.resource === "nodes" && (r.verb === "update" || r.verb === "patch"));
    expect(nodeWrites.length).toBeGreaterThan(0);
    expect(Number(nmi.lines[installed]!.json!["time"])).toBeLessThanOrEqual(nodeWrites[0]!.time);
    const node = await cluster.admin.get(`/api/v1/nodes/${node0.name}`);
    expect((node.spec?.["taints"] as { key: string }[] | undefined) ?? []).not.toContainEqual(expect.objectContaining({ key: NMI_NOT_READY_TAINT.key }));
    // the other node has no NMI: still tainted, nothing scheduled there
    const other = await cluster.admin.get(`/api/v1/nodes/${node1.name}`);
    expect(other.spec?.["taints"]).toContainEqual(expect.objectContaining({ key: NMI_NOT_READY_TAINT.key }));
    // and the pod's first request goes through NMI
    const since = performance.now();
    const r = await curlInPod(cluster, earlyPod, tokenUrl());
    expect(r.status, r.body).toBe(200);
    expect(r.json?.["client_id"]).toBe(id.azure.clientId);
    await cluster.nmiAnswered(earlyPod, { route: "token", status: 200, since });
  });

  it("the nat chain aad-metadata DNATs 169.254.169.254:80 to NMI on the node's own address and is jumped to from PREROUTING; the filter chain guards NMI's port", async () => {
    await nmiOn(node0);
    const rules = await natRules(node0);
    expect(rules).toContain("-N aad-metadata");
    expect(rules).toContain(`-A aad-metadata ! -s 127.0.0.1/32 -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination ${node0.address}:2579`);
    expect(rules).toMatch(/-A PREROUTING -j aad-metadata/);
    const filter = (await cluster.runInNode(node0, "iptables", ["-t", "filter", "-S"])).stdout;
    expect(filter).toContain("-A INPUT -j aad-metadata");
    expect(filter).toContain("-A aad-metadata -p tcp -m tcp --dport 2579 -m conntrack --ctstate DNAT --ctorigdst 169.254.169.254 --ctorigdstport 80 -j RETURN");
    expect(filter).toContain("-j REJECT --reject-with tcp-reset");
  });

  it("instance metadata is proxied to the node's IMDS (through NMI), a path outside the allowlist is NMI's own 404, and the Metadata header is required", async () => {
    await nmiOn(node0);
    const pod = await cluster.addPod("metadata-reader", { node: node0.name, labels: { app: "metadata" } });
    const since = performance.now();
    const compute = await curlInPod(cluster, pod, "http://169.254.169.254/metadata/instance/compute?api-version=2021-02-01");
    expect(compute.status, compute.body).toBe(200);
    expect(compute.headers["x-podidentity-nmi"]).toBeTruthy();
    expect(compute.json?.["name"]).toBe(node0.name);
    await cluster.nmiAnswered(pod, { status: 200, since });

    const missing = await curlInPod(cluster, pod, "http://169.254.169.254/doesnotexist");
    expect(missing.status).toBe(404);
    expect(missing.headers["x-podidentity-nmi"]).toBeTruthy();
    expect(missing.json).toMatchObject({ error: "not_found" });
    await cluster.nmiAnswered(pod, { status: 404, since });

    const noHeader = await curlInPod(cluster, pod, tokenUrl(), {});
    expect(noHeader.status).toBe(400);
    expect(noHeader.json).toMatchObject({ error: "invalid_request", error_description: expect.stringContaining("Required metadata header not specified") });
    await cluster.nmiAnswered(pod, { status: 400, since });
  });

  it("with --block-instance-metadata, /metadata/instance is refused with 403 (token requests still work)", async () => {
    await nmiOn(node1, ["--block-instance-metadata"]);
    const pod = await cluster.addPod("blocked-reader", { node: node1.name, labels: { aadpodidbinding: "web" } });
    const since = performance.now();
    const r = await curlInPod(cluster, pod, "http://169.254.169.254/metadata/instance?api-version=2021-02-01");
    expect(r.status, r.body).toBe(403);
    expect(r.headers["x-podidentity-nmi"]).toBeTruthy();
    await cluster.nmiAnswered(pod, { status: 403, since });
    const token = await curlInPod(cluster, pod, tokenUrl());
    expect(token.status, token.body).toBe(200);
    await cluster.nmiAnswered(pod, { route: "token", status: 200, since });
  });

  it("the node itself and hostNetwork pods are not intercepted (v1.8: traffic from the node never crosses PREROUTING); asking NMI directly from the node is refused", async () => {
    await nmiOn(node0);
    const hostPod = await cluster.addPod("host-agent", { node: node0.name, hostNetwork: true, labels: { aadpodidbinding: "web" } });
    expect(hostPod.ip).toBe(node0.address);
    const since = performance.now();
    // From the node's own address, 169.254.169.254 is the node's IMDS itself: no NMI header, and NMI saw nothing.
    const direct = await curlIn((c, a) => cluster.runInPod(hostPod, c, a), "http://169.254.169.254/metadata/instance/compute?api-version=2021-02-01");
    expect(direct.status).toBe(200);
    expect(direct.headers["x-podidentity-nmi"]).toBeUndefined();
    expect(cluster.nmiRequestsFrom(node0.address, node0.name)).toEqual([]);
    // Asking NMI on its own address from the node: the node's addresses are refused.
    const asked = await curlIn((c, a) => cluster.runInNode(node0, c, a), "http://127.0.0.1:2579/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net");
    expect(asked.status, asked.body).toBe(403);
    expect(asked.json).toMatchObject({ error: "podidentity_host_network" });
    const nmi = cluster.nmi.get(node0.name)!;
    await nmi.waitForLine("the node's refused request", (l) => l.at >= since && l.json?.["msg"] === "request answered" && l.json["status"] === 403 && String(l.json["remote"]).endsWith("127.0.0.1"), 5_000);
  });

  it("on SIGTERM NMI keeps its chains (its DaemonSet still targets the node) and exits 0; pods are then refused, never answered by the node's IMDS", async () => {
    await nmiOn(node0);
    const pod = await cluster.addPod("after-nmi", { node: node0.name, labels: { app: "after" } });
    const exit = await cluster.stopNmi(node0.name);
    expect(exit.code).toBe(0);
    expect(await natRules(node0)).toContain("-A PREROUTING -j aad-metadata");
    const imds = cluster.imds.get(node0.name)!;
    const imdsRequests = imds.counters.requests;
    const r = await cluster.runInPod(pod, "curl", ["-sS", "--max-time", "5", "-H", "Metadata: true", "http://169.254.169.254/metadata/instance/compute?api-version=2021-02-01"]);
    expect(r.code, r.stdout + r.stderr).toBe(7); // curl: could not connect (nothing listens where the rule sends it)
    expect(imds.counters.requests).toBe(imdsRequests);
  });
});
