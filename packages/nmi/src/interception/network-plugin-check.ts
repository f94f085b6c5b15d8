import { access, readFile } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import type { Logger } from "pino";

export class KubenetRefusedError extends Error {
  readonly code = "KUBENET_NOT_ALLOWED";
  constructor(path: string) {
    super(
      `the kubelet config ${path} sets --network-plugin=kubenet: on kubenet a pod with CAP_NET_RAW can spoof another pod's IP ` +
        `and get its identity (CVE-2021-1677). Drop NET_RAW from pods, then start NMI with --allow-network-plugin-kubenet`,
    );
    this.name = "KubenetRefusedError";
  }
}

/**
 * v1.8's kubenet guard: refuse to start when the kubelet runs with `--network-plugin=kubenet`, unless allowed.
 * A missing or unreadable file means "not kubenet" with a warning (docs/contract.md), not a fatal error as in v1.8.
 */
export async function checkNetworkPlugin(options: { kubeletConfigPath: string; allowKubenet: boolean; logger: Logger }): Promise<void> {
  let text: string;
  try {
    text = await readFile(options.kubeletConfigPath, "utf8");
  } catch (error) {
    options.logger.warn({ path: options.kubeletConfigPath, err: (error as Error).message }, "kubelet config not readable; assuming the network plugin is not kubenet");
    return;
  }
  if (!/--network-plugin[= ]+["']?kubenet\b/.test(text)) return;
  if (!options.allowKubenet) throw new KubenetRefusedError(options.kubeletConfigPath);
  options.logger.warn({ path: options.kubeletConfigPath }, "running on kubenet (--allow-network-plugin-kubenet): make sure pods cannot use CAP_NET_RAW");
}

/**
 * Signs of a CNI whose datapath skips iptables PREROUTING for pod traffic (Cilium with eBPF host routing or
 * kube-proxy replacement), which would let pods reach IMDS without passing NMI. Only hints, logged as warnings.
 */
export async function detectIptablesBypass(): Promise<string[]> {
  const hints: string[] = [];
  if (Object.keys(networkInterfaces()).some((name) => name.startsWith("cilium_"))) hints.push("cilium network interfaces are present");
  try {
    await access("/sys/fs/bpf/tc/globals/cilium_lxc");
    hints.push("Cilium's eBPF maps are pinned under /sys/fs/bpf");
  } catch {
    // absent: no Cilium datapath on this node
  }
  return hints;
}
