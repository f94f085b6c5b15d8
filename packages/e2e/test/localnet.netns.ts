// Interception without route_localnet: nodes whose route_localnet is 0 (as where no kube-proxy ever set it, e.g.
// Cilium's kube-proxy replacement) and NMI with /proc/sys read-only (as the DaemonSet's non-privileged container
// has it). NMI DNATs pods' 169.254.169.254:80 to the node's own address and guards its port: a bound pod gets its
// token, while connections straight to <node-ip>:2579 — from a pod on the same node or on another — are reset
// before NMI sees them.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TopologyNode, TopologyPod } from "@podidentity/testbed";
import { E2eCluster, type ClusterIdentity } from "../src/e2e-cluster";
import { IMDS, curlInPod, tokenUrl } from "./helpers/pod-clients";

const NMI_PORT = 2579;
/** The token request's path and query, to send straight to an address. */
const TOKEN_TARGET = tokenUrl().slice(IMDS.length);

describe("interception on nodes with route_localnet = 0 and a read-only /proc/sys", () => {
  let cluster: E2eCluster;
  let id: ClusterIdentity;
  let node0: TopologyNode;
  let node1: TopologyNode;
  let bound: TopologyPod;
  let prober: TopologyPod;
  let neighbour: TopologyPod;

  beforeAll(async () => {
    cluster = await E2eCluster.start({ nodeCount: 2, routeLocalnet: 0, nmiReadOnlyProcSys: true });
    [node0, node1] = [cluster.node(0), cluster.node(1)];
    id = await cluster.bindIdentity(cluster.createIdentity("localnet-id"), { selector: "localnet" });
    bound = await cluster.addPod("bound", { node: node0.name, labels: { aadpodidbinding: "localnet" } });
    prober = await cluster.addPod("prober", { node: node0.name, labels: { app: "prober" } });
    neighbour = await cluster.addPod("neighbour", { node: node1.name, labels: { app: "neighbour" } });
  });
  afterAll(async () => {
    await cluster?.close();
  });

  /** `net.ipv4.conf.<iface>.route_localnet` in the node's namespace. */
  const routeLocalnet = async (node: TopologyNode, iface = "all"): Promise<string> =>
    (await cluster.runInNode(node, "cat", [`/proc/sys/net/ipv4/conf/${iface}/route_localnet`])).stdout.trim();

  /** A bare TCP+HTTP attempt from a pod: curl's exit code (0 answered, 7 refused, 28 timed out) and its error. */
  async function connectFrom(pod: TopologyPod, url: string): Promise<{ code: number | null; stderr: string }> {
    const r = await cluster.runInPod(pod, "curl", ["-sS", "-o", "/dev/null", "--connect-timeout", "3", "-m", "5", "-H", "Metadata: true", url], { timeoutMs: 15_000 });
    return { code: r.code, stderr: r.stderr };
  }

  it("the nodes really have route_localnet = 0, and NMI really runs with /proc/sys read-only", async () => {
    for (const node of [node0, node1]) {
      for (const iface of ["all", "default", "eth0", "cbr0"]) expect(await routeLocalnet(node, iface), `${node.name} ${iface}`).toBe("0");
      // A process started as NMI is cannot write a sysctl, even as root.
      const write = await cluster.runInNode(node, "sh", ["-c", "echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet"], { readOnlyProcSys: true });
      expect(write.code).not.toBe(0);
      expect(write.stderr).toMatch(/Read-only file system/);
      // NMI's own mount table: /proc/sys is mounted read-only there.
      const pid = cluster.nmi.get(node.name)!.child.pid!;
      const mountinfo = (await cluster.runInNode(node, "cat", [`/proc/${pid}/mountinfo`])).stdout;
      const procSys = mountinfo.split("\n").filter((l) => l.split(" ")[4] === "/proc/sys");
      expect(procSys.length, mountinfo).toBeGreaterThan(0);
      expect(procSys.at(-1)!.split(" ")[5]!.split(",")).toContain("ro");
    }
  });

  it("NMI DNATs to the node's own address (its Node's InternalIP) and guards its port, exactly as designed", async () => {
    for (const node of [node0, node1]) {
      const nmi = cluster.nmi.get(node.name)!;
      expect(nmi.logs("interception DNAT target chosen")).toEqual([expect.objectContaining({ target: node.address, from: "node-internal-ip", listen: "0.0.0.0" })]);
      const nat = (await cluster.runInNode(node, "iptables", ["-t", "nat", "-S"])).stdout.split("\n").filter((l) => l.includes("aad-metadata"));
      expect(nat).toEqual([
        "-N aad-metadata",
        "-A PREROUTING -j aad-metadata",
        `-A aad-metadata ! -s 127.0.0.1/32 -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination ${node.address}:${NMI_PORT}`,
        "-A aad-metadata -j RETURN",
      ]);
      const filter = (await cluster.runInNode(node, "iptables", ["-t", "filter", "-S"])).stdout.split("\n").filter((l) => l.includes("aad-metadata"));
      expect(filter).toEqual([
        "-N aad-metadata",
        "-A INPUT -j aad-metadata",
        "-A FORWARD -j aad-metadata",
        `-A aad-metadata -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -m comment --comment "podidentity: metadata traffic not redirected to NMI is refused" -j REJECT --reject-with tcp-reset`,
        `-A aad-metadata -p tcp -m tcp --dport ${NMI_PORT} -m conntrack --ctstate DNAT --ctorigdst 169.254.169.254 --ctorigdstport 80 -j RETURN`,
        `-A aad-metadata -s 127.0.0.1/32 -i lo -p tcp -m tcp --dport ${NMI_PORT} -j RETURN`,
        `-A aad-metadata -p tcp -m tcp --dport ${NMI_PORT} -m comment --comment "podidentity: NMI answers only intercepted metadata traffic and 127.0.0.1" -j REJECT --reject-with tcp-reset`,
      ]);
      // NMI listens on every IPv4 address and on no IPv6 one.
      const listening = (await cluster.runInNode(node, "ss", ["-Hltn", `sport = :${NMI_PORT}`])).stdout.trim().split("\n").map((l) => l.split(/\s+/)[3]);
      expect(listening).toEqual([`0.0.0.0:${NMI_PORT}`]);
    }
  });

  it("a bound pod gets its identity's token through 169.254.169.254", async () => {
    const since = performance.now();
    const r = await curlInPod(cluster, bound, tokenUrl());
    expect(r.status, r.body).toBe(200);
    expect(r.headers["x-podidentity-nmi"]).toBeTruthy();
    expect(r.json?.["client_id"]).toBe(id.azure.clientId);
    await cluster.nmiAnswered(bound, { route: "token", status: 200, since });
  });

  it("a pod connecting straight to <node-ip>:2579 — its own node's, its gateway, another node's — is reset (connection refused), and NMI never sees it", async () => {
    const targets = [
      `http://${node0.address}:${NMI_PORT}${TOKEN_TARGET}`,
      `http://${node0.bridgeAddress}:${NMI_PORT}/metadata/instance?api-version=2021-02-01`,
      `http://${node1.address}:${NMI_PORT}${TOKEN_TARGET}`,
    ];
    for (const url of targets) {
      const r = await connectFrom(prober, url);
      expect(r.code, `${url}: ${r.stderr}`).toBe(7);
      expect(r.stderr).toMatch(/Connection refused|Couldn't connect/);
    }
    // and from the other node's pod to node 0
    const cross = await connectFrom(neighbour, `http://${node0.address}:${NMI_PORT}${TOKEN_TARGET}`);
    expect(cross.code, cross.stderr).toBe(7);

    // The same pods through 169.254.169.254 do reach their own node's NMI; its log is in order, so once those
    // answers are logged, nothing logged before came from the refused attempts.
    const since = performance.now();
    expect((await curlInPod(cluster, prober, tokenUrl())).status).toBe(403);
    expect((await curlInPod(cluster, neighbour, tokenUrl())).status).toBe(403);
    await cluster.nmiAnswered(prober, { route: "token", status: 403, since });
    await cluster.nmiAnswered(neighbour, { route: "token", status: 403, since });
    expect(cluster.nmiRequestsFrom(prober.ip!, node0.name)).toHaveLength(1);
    expect(cluster.nmiRequestsFrom(prober.ip!, node1.name)).toEqual([]);
    expect(cluster.nmiRequestsFrom(neighbour.ip!, node0.name)).toEqual([]);
    expect(cluster.nmiRequestsFrom(neighbour.ip!, node1.name)).toHaveLength(1);
  });

  it("NMI never wrote the sysctl: route_localnet is still 0 on both nodes", async () => {
    for (const node of [node0, node1]) {
      expect(await routeLocalnet(node)).toBe("0");
      expect(cluster.nmi.get(node.name)!.lines.filter((l) => /route_localnet/.test(l.text))).toEqual([]);
    }
  });

  it("v1.8's loopback mode (--nmi-listen-address=127.0.0.1) cannot work here, and NMI says so at startup", async () => {
    await cluster.stopNmi(node1.name);
    const started = cluster.startNmi(node1.name, ["--nmi-listen-address=127.0.0.1"]);
    await expect(started).rejects.toThrow(/--nmi-listen-address=127\.0\.0\.1 DNATs to loopback.*route_localnet=1 failed.*leave --nmi-listen-address unset/);
    expect(await routeLocalnet(node1)).toBe("0");
  });
});
