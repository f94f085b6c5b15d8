// The topology's tests on real kernel networking. They run inside the private network namespace the harness
// makes (a Node process cannot enter one itself): topology.test.ts re-runs this file with vitest under
// spawnInPrivateNetns and reports each test here as one of its own.
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer as createHttpsServer, type Server } from "node:https";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AzureCloud } from "../../src/cloud";
import { KubeApiServer } from "../../src/kube/kube-api-server";
import { NetnsError } from "../../src/netns/errors";
import { runCommand } from "../../src/netns/exec";
import { azureProviderId, STARTUP_TAINT } from "../../src/netns/kube-objects";
import { privateNetnsInfo } from "../../src/netns/private-netns";
import { Topology } from "../../src/netns/topology";
import type { TopologyNode, TopologyPod } from "../../src/netns/topology-members";
import { TestbedCa } from "../../src/tls/testbed-ca";

if (!privateNetnsInfo()) throw new Error("topology.netns.ts runs only inside a private network namespace: run test/netns/topology.test.ts");

const echoServer = join(import.meta.dirname, "fixtures", "echo-server.mjs");

/** Starts a process whose first stdout line is `{"listening":port}`; resolves with that port. */
async function listening(child: ChildProcess): Promise<number> {
  const lines = createInterface({ input: child.stdout! });
  const exited = once(child, "exit").then(([code]) => {
    throw new Error(`server exited (${String(code)}) before listening`);
  });
  const first = (async () => {
    for await (const line of lines) return (JSON.parse(line) as { listening: number }).listening;
    throw new Error("server closed stdout before listening");
  })();
  return Promise.race([first, exited]);
}

interface Echo {
  label: string;
  remote: string;
  host: string;
  url: string;
}

function parseEcho(r: { code: number | null; stdout: string; stderr: string }): Echo {
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Echo;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("network-namespace topology", () => {
  let ca: TestbedCa;
  let topology: Topology;
  let kube: KubeApiServer;
  let arm: Server;
  let armAddress: string;
  const imdsPorts = new Map<string, number>();
  const nodes: TopologyNode[] = [];
  const pods: TopologyPod[] = [];
  const long: number[] = [];

  beforeAll(async () => {
    ca = await TestbedCa.create();
    topology = await Topology.create({ caPem: ca.certPem });
    kube = new KubeApiServer({ host: topology.infraAddress, tls: ca, tokens: { "kubelet-token": "system:node:testbed" } });
    await kube.start();
    await topology.registerInKube({ url: kube.url, token: "kubelet-token", caPem: ca.certPem });

    armAddress = await topology.addService(["management.azure.com"]);
    const leaf = await ca.issue({ dnsNames: ["management.azure.com"] });
    arm = createHttpsServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
      res.end(JSON.stringify({ label: "arm", remote: req.socket.remoteAddress, host: req.headers.host, url: req.url }));
    });
    arm.listen(443, armAddress);
    await once(arm, "listening");

    for (let i = 0; i < 2; i++) {
      const name = `aks-nodepool1-vmss00000${i}`;
      const providerId = azureProviderId({ subscriptionId: "00000000-0000-0000-0000-000000000001", resourceGroup: "MC_rg_cluster_eastus", scaleSet: "aks-nodepool1-vmss", instanceId: i });
      const node = await topology.addNode(name, { providerId, labels: { agentpool: "nodepool1" } });
      nodes.push(node);
      // each node's own IMDS, listening in the infra namespace as Azure's answers per VM
      const imds = spawn(process.execPath, [echoServer, topology.infraAddress, "0", `imds-${name}`], { stdio: ["ignore", "pipe", "inherit"] });
      long.push(imds.pid!);
      imdsPorts.set(name, await listening(imds));
      await topology.setUpstreamImds(name, { host: topology.infraAddress, port: imdsPorts.get(name)! });
      for (let k = 0; k < 2; k++) pods.push(await topology.addPod(`app-${i}-${k}`, { node: name, labels: { app: "demo", aadpodidbinding: `sel-${i}` } }));
    }
    await Promise.all(pods.map((p) => p.whenRunning()));
  });

  afterAll(async () => {
    await topology?.close();
    arm?.close();
    await kube?.close();
    for (const pid of long) if (alive(pid)) process.kill(pid, "SIGKILL");
  });

  it("gives every pod its own address on its node's pod range and a namespace of its own", () => {
    expect(pods.map((p) => [p.node?.name, p.ip])).toEqual([
      [nodes[0]!.name, "10.244.0.10"],
      [nodes[0]!.name, "10.244.0.11"],
      [nodes[1]!.name, "10.244.1.10"],
      [nodes[1]!.name, "10.244.1.11"],
    ]);
    expect(new Set(pods.map((p) => p.netns)).size).toBe(4);
  });

  it("each pod reaches an HTTPS service by its real host name, trusting the testbed CA, with its own source address", async () => {
    const results = await Promise.all(
      pods.map((p) => topology.runInPod(p, process.execPath, ["-e", "fetch(process.argv[1]).then(async (r) => process.stdout.write(await r.text()))", "https://management.azure.com/subscriptions?api-version=2022-12-01"])),
    );
    for (const [i, r] of results.entries()) expect(parseEcho(r)).toMatchObject({ label: "arm", remote: pods[i]!.ip, host: "management.azure.com" });
    // curl (OpenSSL) trusts the CA through the environment too
    const curl = await topology.runInPod(pods[0]!, "curl", ["-sS", "--max-time", "5", "https://management.azure.com/tenants"]);
    expect(parseEcho(curl)).toMatchObject({ label: "arm", remote: pods[0]!.ip });
  });

  it("the hosts file maps the pod's own name and the services; other names fail fast", async () => {
    const hosts = await topology.runInPod(pods[0]!, "cat", ["/etc/hosts"]);
    expect(hosts.stdout).toContain(`${pods[0]!.ip}\t${pods[0]!.name}`);
    expect(hosts.stdout).toContain(`${armAddress}\tmanagement.azure.com`);
    const lookup = await topology.runInPod(pods[0]!, "getent", ["hosts", "example.com"]);
    expect(lookup.code).not.toBe(0);
    // Why it fails fast: the only nameserver is the pod's own loopback (nothing listens: refused at once), one try.
    const resolv = await topology.runInPod(pods[0]!, "cat", ["/etc/resolv.conf"]);
    expect(resolv.stdout).toMatch(/^nameserver 127\.0\.0\.1$/m);
    expect(resolv.stdout).toMatch(/^options timeout:1 attempts:1$/m);
    expect(resolv.stdout.match(/^nameserver /gm)).toHaveLength(1);
  });

  it("a pod's request to 169.254.169.254:80 is DNATed by the node's aad-metadata rule to a server in the node, which sees the pod's address", async () => {
    const node = nodes[0]!;
    const nmi = topology.spawnInNode(node.name, process.execPath, [echoServer, node.bridgeAddress, "2579", "nmi"], { stdio: ["ignore", "pipe", "inherit"] });
    await listening(nmi);
    const ipt = (args: string[]): Promise<unknown> => topology.runInNode(node.name, "iptables", ["-t", "nat", ...args]).then((r) => expect(r.code, r.stderr).toBe(0));
    await ipt(["-N", "aad-metadata"]);
    await ipt(["-A", "aad-metadata", "!", "-s", "127.0.0.1/32", "-d", "169.254.169.254/32", "-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", `${node.bridgeAddress}:2579`]);
    await ipt(["-A", "PREROUTING", "-j", "aad-metadata"]);

    for (const pod of pods.filter((p) => p.node === node)) {
      const r = await topology.runInPod(pod, "curl", ["-sS", "--max-time", "5", "-H", "Metadata: true", "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"]);
      expect(parseEcho(r)).toMatchObject({ label: "nmi", remote: pod.ip, host: "169.254.169.254" });
    }
    // the other node has no NMI: its pods reach that node's own IMDS, never node 0's
    const other = pods.find((p) => p.node === nodes[1])!;
    const r = await topology.runInPod(other, "curl", ["-sS", "--max-time", "5", "http://169.254.169.254/metadata/instance?api-version=2021-02-01"]);
    expect(parseEcho(r)).toMatchObject({ label: `imds-${nodes[1]!.name}`, remote: other.ip, host: "169.254.169.254" });
  });

  it("NMI's default shape works too: DNAT to 127.0.0.1:2579 with route_localnet on, the pod's address still seen", async () => {
    const node = nodes[1]!;
    const nmi = topology.spawnInNode(node.name, process.execPath, [echoServer, "127.0.0.1", "2579", "nmi-loopback"], { stdio: ["ignore", "pipe", "inherit"] });
    await listening(nmi);
    const sh = async (script: string): Promise<void> => {
      const r = await topology.runInNode(node.name, "/bin/sh", ["-c", script]);
      expect(r.code, r.stderr).toBe(0);
    };
    await sh("echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet");
    await sh(
      "iptables -t nat -N aad-metadata && iptables -t nat -A aad-metadata ! -s 127.0.0.1/32 -d 169.254.169.254/32 -p tcp --dport 80 -j DNAT --to-destination 127.0.0.1:2579 && iptables -t nat -A PREROUTING -j aad-metadata",
    );
    for (const pod of pods.filter((p) => p.node === node)) {
      const r = await topology.runInPod(pod, "curl", ["-sS", "--max-time", "5", "http://169.254.169.254/metadata/identity/oauth2/token?resource=x"]);
      expect(parseEcho(r)).toMatchObject({ label: "nmi-loopback", remote: pod.ip, host: "169.254.169.254" });
    }
  });

  it("addNode({ routeLocalnet: 0 }) turns route_localnet off in that node's namespace only (all, default, every interface); readOnlyProcSys makes /proc/sys read-only for one process", async () => {
    const infraBefore = (await runCommand("cat", ["/proc/sys/net/ipv4/conf/all/route_localnet"])).stdout.trim();
    const node = await topology.addNode("aks-localnet-vmss000000", { routeLocalnet: 0 });
    const read = async (iface: string): Promise<string> => (await topology.runInNode(node.name, "cat", [`/proc/sys/net/ipv4/conf/${iface}/route_localnet`])).stdout.trim();
    for (const iface of ["all", "default", "lo", "eth0", "cbr0"]) expect(await read(iface), iface).toBe("0");
    const write = "echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet";
    const readOnly = await topology.runInNode(node.name, "/bin/sh", ["-c", write], { readOnlyProcSys: true });
    expect(readOnly.code).not.toBe(0);
    expect(readOnly.stderr).toMatch(/Read-only file system/);
    expect(await read("all")).toBe("0");
    // an ordinary process in the same namespace can write it, and only this namespace changes
    const writable = await topology.runInNode(node.name, "/bin/sh", ["-c", write]);
    expect(writable.code, writable.stderr).toBe(0);
    expect(await read("all")).toBe("1");
    expect((await runCommand("cat", ["/proc/sys/net/ipv4/conf/all/route_localnet"])).stdout.trim()).toBe(infraBefore);
  });

  it("a hostNetwork process in the node reaches that node's upstream IMDS at 169.254.169.254 (not the node's DNAT)", async () => {
    const node = nodes[0]!;
    const r = await topology.runInNode(node.name, "curl", ["-sS", "--max-time", "5", "-H", "Metadata: true", "http://169.254.169.254/metadata/identity/oauth2/token?resource=x"]);
    expect(parseEcho(r)).toMatchObject({ label: `imds-${node.name}`, remote: node.address });

    const hostPod = await topology.addPod("host-agent", { node: nodes[1]!.name, hostNetwork: true });
    await hostPod.whenRunning();
    expect(hostPod.ip).toBe(nodes[1]!.address);
    const viaPod = await topology.runInPod(hostPod, "curl", ["-sS", "--max-time", "5", "http://169.254.169.254/metadata/instance"]);
    expect(parseEcho(viaPod)).toMatchObject({ label: `imds-${nodes[1]!.name}`, remote: nodes[1]!.address });
  });

  it("a node's emulated IMDS (AzureCloud.startImds in the infra namespace) answers that node's 169.254.169.254", async () => {
    const cloud = await AzureCloud.create({ ca });
    try {
      const vmss = cloud.addScaleSet("aks-imdspool-vmss");
      const node = await topology.addNode("aks-imdspool-vmss000000", { providerId: azureProviderId({ subscriptionId: cloud.subscriptionId, resourceGroup: cloud.resourceGroup, scaleSet: vmss.name, instanceId: 0 }) });
      const imds = await cloud.startImds(node.name, vmss, { host: topology.infraAddress });
      await topology.setUpstreamImds(node.name, imds.url);
      const r = await topology.runInNode(node.name, "curl", ["-sS", "--max-time", "5", "-H", "Metadata: true", "http://169.254.169.254/metadata/instance/compute?api-version=2021-02-01"]);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ name: node.name, vmScaleSetName: vmss.name, subscriptionId: cloud.subscriptionId });
      expect(imds.counters.requests).toBe(1);
    } finally {
      await cloud.close();
    }
  });

  it("registers Node and Pod objects in the Kubernetes API with the real addresses", () => {
    const nodeObj = kube.getObject("nodes", undefined, nodes[0]!.name) as { spec: Record<string, unknown>; status: { addresses: unknown[] }; metadata: { labels: Record<string, string> } };
    expect(nodeObj.spec["providerID"]).toBe(
      "azure:///subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/mc_rg_cluster_eastus/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-vmss/virtualMachines/0",
    );
    expect(nodeObj.spec["podCIDR"]).toBe("10.244.0.0/24");
    expect(nodeObj.status.addresses).toContainEqual({ type: "InternalIP", address: nodes[0]!.address });
    expect(nodeObj.metadata.labels).toMatchObject({ agentpool: "nodepool1", "kubernetes.io/hostname": nodes[0]!.name });
    for (const p of pods) {
      const o = kube.getObject("pods", "default", p.name) as { spec: Record<string, unknown>; status: Record<string, unknown>; metadata: { labels: Record<string, string> } };
      expect(o.spec["nodeName"]).toBe(p.node!.name);
      expect(o.status).toMatchObject({ phase: "Running", podIP: p.ip, hostIP: p.node!.address });
      expect(o.metadata.labels).toEqual({ app: "demo", aadpodidbinding: p.labels["aadpodidbinding"] });
    }
    const hostPod = kube.getObject("pods", "default", "host-agent") as { spec: Record<string, unknown>; status: Record<string, unknown> };
    expect(hostPod.spec["hostNetwork"]).toBe(true);
    expect(hostPod.status["podIP"]).toBe(nodes[1]!.address);
  });

  it("a pod that does not tolerate a node's startup taint stays Pending without a node until the taint is removed through the API", async () => {
    const tainted = await topology.addNode("aks-nodepool1-vmss000002", { taints: [STARTUP_TAINT] });
    expect((kube.getObject("nodes", undefined, tainted.name) as { spec: { taints: unknown[] } }).spec.taints).toEqual([STARTUP_TAINT]);
    const waiting = await topology.addPod("waits-for-taint", { node: tainted.name, labels: { app: "late" } });
    const tolerant = await topology.addPod("tolerates-taint", { node: tainted.name, tolerations: [{ key: STARTUP_TAINT.key, operator: "Exists", effect: "NoSchedule" }] });
    await tolerant.whenRunning();
    expect(waiting.phase).toBe("Pending");
    const pending = kube.getObject("pods", "default", waiting.name) as { spec: Record<string, unknown>; status: { phase: string; conditions: { reason: string }[] } };
    expect(pending.spec["nodeName"]).toBeUndefined();
    expect(pending.status.phase).toBe("Pending");
    expect(pending.status.conditions[0]?.reason).toBe("Unschedulable");

    // as NMI will: remove the taint through the Kubernetes API; the topology's node watch places the pod
    kube.patchObject("nodes", undefined, tainted.name, { spec: { taints: null } });
    await waiting.whenRunning();
    expect(waiting.node?.name).toBe(tainted.name);
    const placed = kube.getObject("pods", "default", waiting.name) as { spec: Record<string, unknown>; status: Record<string, unknown> };
    expect(placed.spec["nodeName"]).toBe(tainted.name);
    expect(placed.status).toMatchObject({ phase: "Running", podIP: waiting.ip });
    const r = await topology.runInPod(waiting, "curl", ["-sS", "--max-time", "5", "https://management.azure.com/"]);
    expect(parseEcho(r).remote).toBe(waiting.ip);
  });

  it("a taint removed while the node watch is cut is still seen (relist), and the waiting pod placed", async () => {
    const tainted = await topology.addNode("aks-nodepool1-vmss000004", { taints: [STARTUP_TAINT] });
    const waiting = await topology.addPod("waits-across-a-cut", { node: tainted.name });
    expect(kube.dropWatches({ abrupt: true })).toBeGreaterThan(0);
    kube.patchObject("nodes", undefined, tainted.name, { spec: { taints: null } });
    await waiting.whenRunning();
    expect((kube.getObject("pods", "default", waiting.name) as { spec: Record<string, unknown> }).spec["nodeName"]).toBe(tainted.name);
  });

  it("runInPod rejects with TIMEOUT and kills a process that outlives its deadline", async () => {
    const err = await topology.runInPod(pods[0]!, "sleep", ["29.75"], { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetnsError);
    expect((err as NetnsError).code).toBe("TIMEOUT");
    // Killed, not left behind: that `sleep` (an argument no other test uses; pods share the PID namespace) is gone.
    const left = await topology.runInPod(pods[0]!, "pgrep", ["-f", "^sleep 29\\.75$"]);
    expect(left.code).toBe(1);
  });

  it("close() stops every process and removes every namespace, interface and rule", async () => {
    const inPod = topology.spawnInPod(pods[1]!, "sleep", ["600"]);
    const inNode = topology.spawnInNode(nodes[1]!.name, "sleep", ["600"]);
    // a daemon that left its parent behind: found through its namespace, not through our child handles
    const orphan = await topology.runInPod(pods[2]!, "/bin/sh", ["-c", "sleep 600 >/dev/null 2>&1 & echo $!"]);
    const orphanPid = Number(orphan.stdout.trim());
    expect([inPod.pid, inNode.pid, orphanPid].every((pid) => pid !== undefined && alive(pid))).toBe(true);
    expect(topology.processCount).toBeGreaterThan(0);

    await topology.close();

    expect(topology.processCount).toBe(0);
    for (const pid of [inPod.pid!, inNode.pid!, orphanPid]) expect(alive(pid), `pid ${pid}`).toBe(false);
    expect((await runCommand("ip", ["netns", "list"])).stdout.trim()).toBe("");
    const links = (await runCommand("ip", ["-o", "link", "show"])).stdout;
    expect(links).not.toMatch(/podid-/);
    expect((await runCommand("iptables", ["-t", "nat", "-S"])).stdout).not.toMatch(/podid-/);
    await expect(topology.addPod("late")).rejects.toMatchObject({ code: "CLOSED" });
  });

  it("cleanupStale removes a crashed run's namespaces (and the processes in them) and interfaces by name prefix", async () => {
    await runCommand("ip", ["netns", "add", "podid-crashed-n0"]);
    await runCommand("ip", ["link", "add", "podid-crashed0", "type", "veth", "peer", "name", "eth0", "netns", "podid-crashed-n0"]);
    const stray = spawn("ip", ["netns", "exec", "podid-crashed-n0", "sleep", "600"], { stdio: "ignore" });
    const strayExit = once(stray, "exit");
    await expect.poll(async () => (await runCommand("ip", ["netns", "pids", "podid-crashed-n0"])).stdout.trim(), { timeout: 5_000 }).not.toBe("");
    await runCommand("ip", ["netns", "add", "other-tool-ns"]);

    const removed = await Topology.cleanupStale("podid-crashed");

    expect(removed.namespaces).toEqual(["podid-crashed-n0"]);
    await strayExit;
    expect((await runCommand("ip", ["netns", "list"])).stdout).not.toMatch(/podid-crashed/);
    expect((await runCommand("ip", ["-o", "link", "show"])).stdout).not.toMatch(/podid-crashed/);
    // what does not carry the prefix is left alone
    expect((await runCommand("ip", ["netns", "list"])).stdout).toMatch(/other-tool-ns/);
    await runCommand("ip", ["netns", "del", "other-tool-ns"]);
  });
});
