import type { Logger } from "pino";
import { KubeApiError, type KubeClient } from "@podidentity/kube";
import type { NodeObject } from "../kube-objects";

/** The startup taint a node pool can be created with; NMI removes it once interception is live. */
export const NMI_NOT_READY_TAINT = { key: "podidentity.io/nmi-not-ready", effect: "NoSchedule" } as const;

/**
 * Removes NMI_NOT_READY_TAINT from the node so pods are scheduled only once their IMDS traffic is intercepted —
 * aad-pod-identity's known issue "pods scheduled before NMI get every identity on the node". Read-modify-write
 * with the resourceVersion, retried on conflict. Returns whether a taint was removed.
 */
export async function removeStartupTaint(client: KubeClient, nodeName: string, logger: Logger): Promise<boolean> {
  const path = `/api/v1/nodes/${encodeURIComponent(nodeName)}`;
  for (let attempt = 1; ; attempt++) {
    const node = await client.get<NodeObject>(path);
    const taints = node.spec?.taints ?? [];
    const kept = taints.filter((t) => !(t.key === NMI_NOT_READY_TAINT.key && t.effect === NMI_NOT_READY_TAINT.effect));
    if (kept.length === taints.length) return false;
    node.spec = { ...node.spec, taints: kept };
    try {
      await client.update(path, node);
      logger.info({ node: nodeName, taint: NMI_NOT_READY_TAINT.key }, "startup taint removed: interception is live");
      return true;
    } catch (error) {
      // 409: someone else updated the node in between; read it again.
      if (!(error instanceof KubeApiError && error.statusCode === 409) || attempt >= 5) throw error;
    }
  }
}
