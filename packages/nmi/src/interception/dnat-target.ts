import { isIP } from "node:net";
import type { KubeClient } from "@podidentity/kube";
import type { NodeObject } from "../kube-objects";
import { InterceptionError, isLoopbackIPv4 } from "./iptables-manager";

/** Where the DNAT target came from, for the log line that reports it. */
export type DnatTargetSource = "nmi-listen-address" | "host-ip" | "node-internal-ip";

export interface DnatTargetInput {
  /** `--nmi-listen-address`: `0.0.0.0` (the default), a loopback address (v1.8's mode) or one of the node's addresses. */
  listenAddress: string;
  /** `--host-ip` (or env `HOST_IP`), when given. */
  hostIp: string | undefined;
  nodeName: string;
  kube: KubeClient;
  /** The node's own addresses: a target outside them would send pods' metadata traffic to another machine. */
  isNodeAddress: (ip: string) => boolean;
}

/**
 * The address pods' metadata traffic is DNATed to (iptables-manager.ts):
 *
 * - `--nmi-listen-address` set to a loopback address → that address (aad-pod-identity v1.8's mode; needs
 *   `route_localnet`);
 * - `--nmi-listen-address` set to a specific address → that address, where NMI listens;
 * - `0.0.0.0` (the default) → the node's own IPv4 address: `--host-ip` (env `HOST_IP`, which the DaemonSet fills
 *   from the downward API), else the first IPv4 InternalIP of this node's Node object.
 *
 * Anything but loopback must be an address of this node. Throws InterceptionError naming the flag to set.
 */
export async function resolveDnatTarget(input: DnatTargetInput): Promise<{ ip: string; source: DnatTargetSource }> {
  const { listenAddress, hostIp, nodeName } = input;
  if (listenAddress !== "0.0.0.0") {
    if (!isLoopbackIPv4(listenAddress) && !input.isNodeAddress(listenAddress)) {
      throw new InterceptionError(`--nmi-listen-address=${listenAddress} is not an address of this node; leave it unset (0.0.0.0) to DNAT to the node's own address`);
    }
    return { ip: listenAddress, source: "nmi-listen-address" };
  }
  if (hostIp !== undefined) {
    if (!input.isNodeAddress(hostIp)) {
      throw new InterceptionError(`--host-ip=${hostIp} (or env HOST_IP) is not an address of this node; give the node's own IPv4 address, or leave it unset to use the Node's InternalIP`);
    }
    return { ip: hostIp, source: "host-ip" };
  }
  let node: NodeObject;
  try {
    node = await input.kube.get<NodeObject>(`/api/v1/nodes/${encodeURIComponent(nodeName)}`);
  } catch (error) {
    throw new InterceptionError(
      `reading Node ${nodeName} for its InternalIP failed (${(error as Error).message}); set --host-ip (env HOST_IP, e.g. from the downward API's status.hostIP) to the node's IPv4 address`,
      { cause: error },
    );
  }
  const internal = (node.status?.addresses ?? []).filter((a) => a.type === "InternalIP" && typeof a.address === "string" && isIP(a.address) === 4).map((a) => a.address as string);
  const local = internal.find((a) => input.isNodeAddress(a));
  if (local === undefined) {
    const seen = internal.length > 0 ? `its IPv4 InternalIPs ${internal.join(", ")} are not addresses of this node` : "it has no IPv4 InternalIP";
    throw new InterceptionError(`cannot find this node's address to DNAT metadata traffic to: Node ${nodeName}: ${seen}; set --host-ip (env HOST_IP) to the node's IPv4 address`);
  }
  return { ip: local, source: "node-internal-ip" };
}
