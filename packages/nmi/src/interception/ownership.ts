import type { Logger } from "pino";
import { KubeApiError, type KubeClient } from "@podidentity/kube";
import type { KubeObject } from "@podidentity/kube";
import type { NodeObject, Pod } from "../kube-objects";
import { daemonSetTargetsNode, type PodPlacementSpec } from "./node-targeting";
import { NMI_NOT_READY_TAINT } from "./node-taint";

/** The DaemonSet that runs this NMI. */
export interface DaemonSetRef {
  namespace: string;
  name: string;
}

/**
 * What NMI does with its iptables rules when it stops, and why. `remove` only when the cluster says NMI is gone
 * from this node for good; every doubt keeps the rules, so pods' requests are refused (nothing listens on the
 * DNAT target) instead of reaching the node's IMDS.
 */
export type InterceptionDecision =
  | { action: "remove"; reason: "daemonset-deleted" | "daemonset-deleting" | "node-not-selected" | "node-affinity-mismatch" | "taint-not-tolerated"; detail: string }
  | {
      action: "keep";
      reason: "node-targeted" | "owner-unknown" | "owner-not-daemonset" | "api-forbidden" | "api-unavailable" | "api-timeout" | "api-error";
      detail: string;
    };

export interface InterceptionOwnershipOptions {
  client: KubeClient;
  nodeName: string;
  /** This NMI's pod (downward API `metadata.name` / `metadata.namespace`); without them no owner can be found. */
  podName?: string | undefined;
  podNamespace?: string | undefined;
  /** Deadline for all API calls of one `decide()`. */
  timeoutMs: number;
  logger: Logger;
}

interface DaemonSetObject extends KubeObject {
  spec?: { template?: { spec?: PodPlacementSpec } };
}

class DeadlineExceeded extends Error {}

const PLACEMENT_REASONS = { "node-selector": "node-not-selected", "node-affinity": "node-affinity-mismatch", taint: "taint-not-tolerated" } as const;

/**
 * "Should this node keep interception?" — asked once when NMI stops. NMI finds its DaemonSet through its own
 * pod's controller ownerReference (looked up at start, again at stop if that failed) and reads it: deleted or
 * being deleted → uninstall; its pod template no longer placing a pod on this node → the node left the
 * DaemonSet; otherwise (a restart, a rollout, `kubectl delete pod`) the rules stay. The API unreachable, a
 * refusal or the deadline → the rules stay (fail closed), with the reason logged.
 */
export class InterceptionOwnership {
  readonly #o: InterceptionOwnershipOptions;
  #owner: DaemonSetRef | undefined;

  constructor(options: InterceptionOwnershipOptions) {
    this.#o = options;
  }

  /** The owning DaemonSet, once found. */
  get owner(): DaemonSetRef | undefined {
    return this.#owner;
  }

  /**
   * Finds the DaemonSet that owns this NMI's pod; undefined when no pod is configured or the pod has no
   * DaemonSet controller. Throws KubeApiError when the API refuses or fails.
   */
  async resolveOwner(): Promise<DaemonSetRef | undefined> {
    if (this.#owner !== undefined) return this.#owner;
    const { podName, podNamespace, client } = this.#o;
    if (!podName || !podNamespace) return undefined;
    const pod = await client.get<Pod>(`/api/v1/namespaces/${encodeURIComponent(podNamespace)}/pods/${encodeURIComponent(podName)}`);
    const refs = (pod.metadata?.["ownerReferences"] ?? []) as Array<{ apiVersion?: string; kind?: string; name?: string; controller?: boolean }>;
    const ref = refs.find((r) => r.controller === true && r.kind === "DaemonSet" && r.apiVersion?.startsWith("apps/") === true && typeof r.name === "string");
    if (ref === undefined) return undefined;
    this.#owner = { namespace: podNamespace, name: ref.name! };
    return this.#owner;
  }

  /** Decides within `timeoutMs`; never throws. */
  async decide(): Promise<InterceptionDecision> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DeadlineExceeded()), this.#o.timeoutMs);
    });
    try {
      return await Promise.race([this.#decide(), deadline]);
    } catch (error) {
      // Every failure keeps the rules; the reason says which kind, so operators know what to fix.
      if (error instanceof DeadlineExceeded) {
        return { action: "keep", reason: "api-timeout", detail: `the API server did not answer within ${this.#o.timeoutMs} ms` };
      }
      if (error instanceof KubeApiError && (error.statusCode === 401 || error.statusCode === 403)) {
        return { action: "keep", reason: "api-forbidden", detail: `${error.message} (NMI needs get on its pod and on its DaemonSet)` };
      }
      if (error instanceof KubeApiError && (error.statusCode === 0 || error.statusCode >= 500 || error.statusCode === 429)) {
        return { action: "keep", reason: "api-unavailable", detail: error.message };
      }
      return { action: "keep", reason: "api-error", detail: (error as Error).message };
    } finally {
      clearTimeout(timer);
    }
  }

  async #decide(): Promise<InterceptionDecision> {
    const { client, nodeName } = this.#o;
    const owner = await this.resolveOwner();
    if (owner === undefined) {
      return this.#o.podName && this.#o.podNamespace
        ? { action: "keep", reason: "owner-not-daemonset", detail: `pod ${this.#o.podNamespace}/${this.#o.podName} has no DaemonSet controller` }
        : { action: "keep", reason: "owner-unknown", detail: "no pod name and namespace (env POD_NAME, POD_NAMESPACE or --pod-name, --pod-namespace) to find the owning DaemonSet" };
    }
    const where = `DaemonSet ${owner.namespace}/${owner.name}`;
    let daemonSet: DaemonSetObject;
    try {
      daemonSet = await client.get<DaemonSetObject>(`/apis/apps/v1/namespaces/${encodeURIComponent(owner.namespace)}/daemonsets/${encodeURIComponent(owner.name)}`);
    } catch (error) {
      // 404: the DaemonSet is gone (`kubectl delete daemonset`, an uninstall); anything else is a failure to read.
      if (error instanceof KubeApiError && error.statusCode === 404) return { action: "remove", reason: "daemonset-deleted", detail: `${where} no longer exists` };
      throw error;
    }
    if (daemonSet.metadata?.deletionTimestamp) {
      return { action: "remove", reason: "daemonset-deleting", detail: `${where} is being deleted (since ${daemonSet.metadata.deletionTimestamp})` };
    }
    const node = await client.get<NodeObject & { metadata?: { labels?: Record<string, string> } }>(`/api/v1/nodes/${encodeURIComponent(nodeName)}`);
    const placement = daemonSetTargetsNode(daemonSet.spec?.template?.spec ?? {}, node, { ignoredTaintKeys: [NMI_NOT_READY_TAINT.key] });
    if (!placement.targeted) return { action: "remove", reason: PLACEMENT_REASONS[placement.reason], detail: `${where} no longer targets node ${nodeName}: ${placement.detail}` };
    return { action: "keep", reason: "node-targeted", detail: `${where} still targets node ${nodeName} (a restart or rollout)` };
  }
}
