/**
 * The `ip netns` / `ip link` queries and removals the topology and its cleanup share.
 */
import { NetnsError } from "./errors";
import { runCommand } from "./exec";

export const ip = (args: string[]): Promise<unknown> => runCommand("ip", args);

export async function listNetns(): Promise<string[]> {
  const { stdout } = await runCommand("ip", ["netns", "list"]);
  return stdout
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter(Boolean);
}

export async function listLinks(): Promise<string[]> {
  const { stdout } = await runCommand("ip", ["-o", "link", "show"]);
  return stdout
    .split("\n")
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? "")
    .filter(Boolean);
}

/** Kills every process in the namespace (they would keep it alive), then deletes it. */
export async function deleteNetns(netns: string): Promise<void> {
  const { stdout } = await runCommand("ip", ["netns", "pids", netns]).catch(() => ({ stdout: "" }));
  for (const pid of stdout.split(/\s+/).filter(Boolean).map(Number)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already exited
    }
  }
  await ip(["netns", "del", netns]);
}

/** The safety net for `Topology.create`: refuse to build anything in a namespace that has a real interface. */
export async function assertPrivateNamespace(prefix: string): Promise<void> {
  const foreign = (await listLinks()).filter((l) => l !== "lo" && !l.startsWith(prefix));
  if (foreign.length) {
    throw new NetnsError(
      "NOT_IN_PRIVATE_NETNS",
      `Topology.create: this network namespace has interfaces the topology did not make (${foreign.join(", ")}); it looks like the machine's own network. Start the process with spawnInPrivateNetns()`,
    );
  }
}

/** A node's namespace: `eth0` on the VNet bridge with the node's address, its pod bridge, forwarding on. */
export async function createNodeNetwork(n: { netns: string; infraVeth: string; vnetBridge: string; nodeBridge: string; address: string; bridgeAddress: string; infraAddress: string }): Promise<void> {
  await ip(["netns", "add", n.netns]);
  await ip(["link", "add", n.infraVeth, "type", "veth", "peer", "name", "eth0", "netns", n.netns]);
  await ip(["link", "set", n.infraVeth, "master", n.vnetBridge, "up"]);
  const inNode = (args: string[]): Promise<unknown> => ip(["-n", n.netns, ...args]);
  await inNode(["link", "set", "lo", "up"]);
  await inNode(["addr", "add", `${n.address}/16`, "dev", "eth0"]);
  await inNode(["link", "set", "eth0", "up"]);
  await inNode(["route", "add", "default", "via", n.infraAddress]);
  await inNode(["link", "add", n.nodeBridge, "type", "bridge"]);
  await inNode(["addr", "add", `${n.bridgeAddress}/24`, "dev", n.nodeBridge]);
  await inNode(["link", "set", n.nodeBridge, "up"]);
  // /proc/sys/net is the netns of the process that opens it: this turns forwarding on in the node only
  await runCommand("ip", ["netns", "exec", n.netns, "/bin/sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
}

/**
 * Sets `route_localnet` for `all`, `default` (interfaces made later: pods' bridge ports) and every interface of the
 * namespace: the kernel ORs `all` with the interface's own value, so `all` alone could not turn it off.
 */
export async function setRouteLocalnet(netns: string, value: 0 | 1): Promise<void> {
  await runCommand("ip", ["netns", "exec", netns, "/bin/sh", "-c", `for f in /proc/sys/net/ipv4/conf/*/route_localnet; do echo ${value} > "$f"; done`]);
}

/**
 * A pod's namespace: a veth made here, its `eth0` end in the pod, the other end moved into the node (interface
 * names only have to be unique per namespace) and enslaved to the node's bridge; default route via the node.
 */
export async function createPodNetwork(p: { netns: string; nodeNetns: string; tmpVeth: string; nodeVeth: string; nodeBridge: string; address: string; gateway: string }): Promise<void> {
  await ip(["netns", "add", p.netns]);
  await ip(["link", "add", p.tmpVeth, "type", "veth", "peer", "name", "eth0", "netns", p.netns]);
  await ip(["link", "set", p.tmpVeth, "netns", p.nodeNetns]);
  await ip(["-n", p.nodeNetns, "link", "set", p.tmpVeth, "name", p.nodeVeth]);
  await ip(["-n", p.nodeNetns, "link", "set", p.nodeVeth, "master", p.nodeBridge, "up"]);
  await ip(["-n", p.netns, "link", "set", "lo", "up"]);
  await ip(["-n", p.netns, "addr", "add", `${p.address}/24`, "dev", "eth0"]);
  await ip(["-n", p.netns, "link", "set", "eth0", "up"]);
  await ip(["-n", p.netns, "route", "add", "default", "via", p.gateway]);
}
