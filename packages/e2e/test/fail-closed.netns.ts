// Fail closed across restarts (issue 12, item 3): NMI keeps its iptables rules when it stops, so a pod's request
// to 169.254.169.254 is refused while NMI is away instead of answered by the node's IMDS — which would hand an
// unlabelled pod any identity on the node. NMI removes its rules only when its DaemonSet (created here from the
// rendered manifest) is deleted or no longer targets the node; `podidentity-nmi cleanup` removes what a killed
// NMI left behind.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { checkRbacCoverage, INSTALL_NAMES, renderManifests, rulesForServiceAccount } from "@podidentity/install";
import type { TopologyNode } from "@podidentity/testbed";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLUSTER_USERS, PROGRAMS } from "../src/cluster-options";
import { ComponentProcess } from "../src/component-process";
import { E2eCluster, type ClusterIdentity } from "../src/e2e-cluster";
import { curlInPod, tokenUrl } from "./helpers/pod-clients";

const KEEP = "shutdown: keeping the iptables rules (pods' metadata requests are refused until NMI is back)";
const REMOVE = "shutdown: removing the iptables rules";

/**
 * A pod's app asking for a token in a loop (one request at a time, 50 ms apart, 2 s timeout each), printing one
 * JSON line per attempt: the status, NMI's header, the error code — whether a token came back, never the token.
 */
const POLLER = `
const http = require("node:http");
const url = process.argv[1];
let n = 0;
const next = () => setTimeout(once, 50);
function once() {
  const req = http.get(url, { headers: { Metadata: "true" }, timeout: 2000, agent: false }, (res) => {
    let body = "";
    res.setEncoding("utf8");
    res.on("data", (c) => (body += c));
    res.on("end", () => {
      let json;
      try { json = JSON.parse(body); } catch {}
      console.log(JSON.stringify({ n: n++, status: res.statusCode, nmi: res.headers["x-podidentity-nmi"] ?? null, error: json?.error ?? null, token: typeof json?.access_token === "string" }));
      next();
    });
  });
  req.on("timeout", () => req.destroy(Object.assign(new Error("timeout"), { code: "TIMEOUT" })));
  req.on("error", (e) => { console.log(JSON.stringify({ n: n++, status: null, error: e.code ?? e.message })); next(); });
}
once();
`;

describe("fail closed across NMI restarts; rules removed on uninstall", () => {
  let cluster: E2eCluster;
  let node0: TopologyNode;
  let node1: TopologyNode;
  let id: ClusterIdentity;

  beforeAll(async () => {
    cluster = await E2eCluster.start({ nodeCount: 2 });
    [node0, node1] = [cluster.node(0), cluster.node(1)];
    // An identity really assigned to the nodes' scale set: the node's IMDS would hand out its token to anyone asking.
    id = await cluster.bindIdentity(cluster.createIdentity("fail-closed-id"), { selector: "fail-closed" });
    const owner = await cluster.addPod("fail-closed-app", { labels: { aadpodidbinding: "fail-closed" }, node: node0.name });
    const r = await curlInPod(cluster, owner, tokenUrl());
    expect(r.status, r.body).toBe(200);
  });
  afterAll(async () => {
    await cluster?.close();
  });

  const natRules = async (node: TopologyNode): Promise<string> => (await cluster.runInNode(node, "iptables", ["-t", "nat", "-S"])).stdout;
  const filterRules = async (node: TopologyNode): Promise<string> => (await cluster.runInNode(node, "iptables", ["-t", "filter", "-S"])).stdout;

  it("restart: an unlabelled pod polling for another identity's token throughout the stop → start window gets 0 tokens — refused while NMI is away, 403 before and after", async () => {
    const attacker = await cluster.addPod("fail-closed-attacker", { node: node0.name });
    const imds = cluster.imds.get(node0.name)!;
    const tokensBefore = imds.counters.tokensIssued;
    const poller = new ComponentProcess("poller", cluster.spawnInPod(attacker, process.execPath, ["-e", POLLER, tokenUrl("https://vault.azure.net", `&client_id=${id.azure.clientId}`)]));
    try {
      await poller.waitForLine("a 403 from NMI", (l) => l.json?.["status"] === 403 && l.json["nmi"] !== null, 10_000);
      const stoppedAt = performance.now();
      const exit = await cluster.stopNmi(node0.name);
      expect(exit.code).toBe(0);
      expect(await natRules(node0)).toContain("-A PREROUTING -j aad-metadata");
      const refusedSince = (t: number): number => poller.lines.filter((l) => l.at >= t && l.json?.["error"] === "ECONNREFUSED").length;
      await poller.waitForLine("3 refused connections while NMI is stopped", (l) => l.at >= stoppedAt && refusedSince(stoppedAt) >= 3, 10_000);
      const restartedAt = performance.now();
      await cluster.startNmi(node0.name);
      await poller.waitForLine("a 403 from the restarted NMI", (l) => l.at >= restartedAt && l.json?.["status"] === 403, 10_000);
    } finally {
      await poller.stop();
    }
    const attempts = poller.lines.flatMap((l) => (l.json ? [l.json] : []));
    // 0 tokens: no attempt got one; every HTTP answer is NMI's refusal; the node's IMDS issued nothing meanwhile.
    expect(attempts.filter((a) => a["token"] === true)).toEqual([]);
    const answered = attempts.filter((a) => a["status"] !== null);
    expect(answered.length).toBeGreaterThanOrEqual(2);
    expect(new Set(answered.map((a) => `${String(a["status"])} ${String(a["error"])} nmi:${a["nmi"] !== null}`))).toEqual(new Set(["403 podidentity_no_binding nmi:true"]));
    expect(imds.counters.tokensIssued).toBe(tokensBefore);
    // the poller ran during the gap: its requests were refused (nothing listens where the rules send them)
    expect(attempts.filter((a) => a["error"] === "ECONNREFUSED").length).toBeGreaterThanOrEqual(3);

    // The first instance said why it kept the rules; both instances' logs are kept (in memory and in the file).
    const instances = cluster.nmiInstances.get(node0.name)!;
    expect(instances).toHaveLength(2);
    expect(instances[0]!.logs(KEEP)).toEqual([expect.objectContaining({ level: 30, interception: "keep", reason: "node-targeted" })]);
    const file = await readFile(join(cluster.workDir, `nmi-${node0.name}.log`), "utf8");
    expect(file.match(/^# nmi@\S+ pid \d+ started /gm)).toHaveLength(2);
    expect(file.indexOf(KEEP)).toBeGreaterThan(0);
    expect(file.indexOf(KEEP)).toBeLessThan(file.lastIndexOf("# nmi@"));
    // NMI's own record: every request it saw from the attacker was refused. It may hold one more than the poller
    // printed — the request in flight when the poller was stopped was answered but never reported.
    const seenByNmi = cluster.nmiRequestsFrom(attacker.ip!, node0.name);
    expect(new Set(seenByNmi.map((l) => `${String(l["status"])} ${String(l["code"])}`))).toEqual(new Set(["403 podidentity_no_binding"]));
    expect(seenByNmi.length - answered.length).toBeGreaterThanOrEqual(0);
    expect(seenByNmi.length - answered.length).toBeLessThanOrEqual(1);
  });

  it("node relabelled out of the DaemonSet's nodeSelector, then SIGTERM: NMI removes its rules", async () => {
    expect(await natRules(node1)).toContain("-A PREROUTING -j aad-metadata");
    await cluster.admin.patch(`/api/v1/nodes/${node1.name}`, { metadata: { labels: { "kubernetes.io/os": "windows" } } });
    const exit = await cluster.stopNmi(node1.name);
    expect(exit.code).toBe(0);
    expect(cluster.nmi.get(node1.name)!.logs(REMOVE)).toEqual([expect.objectContaining({ interception: "remove", reason: "node-not-selected" })]);
    expect(await natRules(node1)).not.toContain("aad-metadata");
    expect(await filterRules(node1)).not.toContain("aad-metadata");
    await cluster.admin.patch(`/api/v1/nodes/${node1.name}`, { metadata: { labels: { "kubernetes.io/os": "linux" } } });
  });

  it("a killed NMI leaves its rules; `podidentity-nmi cleanup` on the node removes them and exits 0, also when there is nothing left", async () => {
    await cluster.startNmi(node1.name);
    expect(await natRules(node1)).toContain("-A PREROUTING -j aad-metadata");
    const exit = await cluster.stopNmi(node1.name, "SIGKILL");
    expect(exit.signal).toBe("SIGKILL");
    expect(await natRules(node1)).toContain("-A PREROUTING -j aad-metadata");
    const first = await cluster.runInNode(node1, process.execPath, [PROGRAMS.nmi(), "cleanup"]);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    expect(JSON.parse(first.stdout.trim().split("\n").pop()!)).toMatchObject({ msg: "NMI's iptables rules removed" });
    expect(await natRules(node1)).not.toContain("aad-metadata");
    expect(await filterRules(node1)).not.toContain("aad-metadata");
    const second = await cluster.runInNode(node1, process.execPath, [PROGRAMS.nmi(), "cleanup"]);
    expect(second.code, second.stdout + second.stderr).toBe(0);
    expect(JSON.parse(second.stdout.trim().split("\n").pop()!)).toMatchObject({ msg: "no NMI iptables rules on this node: nothing to remove", removed: [] });
  });

  it("DaemonSet deleted (uninstall), then SIGTERM: NMI removes its rules", async () => {
    expect(await natRules(node0)).toContain("-A PREROUTING -j aad-metadata");
    await cluster.admin.delete(cluster.nmiDaemonSetPath);
    const exit = await cluster.stopNmi(node0.name);
    expect(exit.code).toBe(0);
    expect(cluster.nmi.get(node0.name)!.logs(REMOVE)).toEqual([expect.objectContaining({ interception: "remove", reason: "daemonset-deleted" })]);
    expect(await natRules(node0)).not.toContain("aad-metadata");
    expect(await filterRules(node0)).not.toContain("aad-metadata");
  });

  it("NMI's reads on SIGTERM (its pod, its DaemonSet, its node) are all allowed by the rendered RBAC, the DaemonSet by name only", () => {
    const made = cluster.kube.requests
      .filter((r) => r.user === CLUSTER_USERS.nmi && r.verb !== undefined && r.resource !== undefined)
      .map((r) => ({ verb: r.verb!, group: r.group ?? "", resource: r.resource!, subresource: r.subresource, namespace: r.namespace, name: r.name }));
    const daemonSetReads = made.filter((r) => r.resource === "daemonsets");
    expect(daemonSetReads.length).toBeGreaterThanOrEqual(3);
    expect(new Set(daemonSetReads.map((r) => `${r.verb} ${r.group} ${r.namespace}/${r.name}`))).toEqual(new Set([`get apps ${cluster.nmiDaemonSet.namespace}/${INSTALL_NAMES.nmi}`]));
    expect(made.filter((r) => r.resource === "pods" && r.verb === "get").length).toBeGreaterThanOrEqual(1);
    const coverage = checkRbacCoverage(made, rulesForServiceAccount(renderManifests(), cluster.nmiDaemonSet.namespace, INSTALL_NAMES.nmi));
    expect(coverage.denied).toEqual([]);
  });
});
