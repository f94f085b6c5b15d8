/**
 * The Node and Pod objects the topology registers, and the scheduler's taint/toleration rule, as Kubernetes
 * defines them (`k8s.io/api/core/v1` `Toleration.ToleratesTaint`).
 */

export type TaintEffect = "NoSchedule" | "PreferNoSchedule" | "NoExecute";

export interface Taint {
  key: string;
  value?: string;
  effect: TaintEffect;
}

export interface Toleration {
  key?: string;
  operator?: "Exists" | "Equal";
  value?: string;
  effect?: TaintEffect;
  tolerationSeconds?: number;
}

/** The taint AKS puts on nodes of a pool created with startup taints, until a DaemonSet clears it. */
export const STARTUP_TAINT: Taint = { key: "node.cloudprovider.kubernetes.io/uninitialized", value: "true", effect: "NoSchedule" };

export function toleratesTaint(toleration: Toleration, taint: Taint): boolean {
  if (toleration.effect && toleration.effect !== taint.effect) return false;
  if (toleration.key && toleration.key !== taint.key) return false;
  // an empty key with Exists matches every key
  if (!toleration.key && toleration.operator !== "Exists") return false;
  if (toleration.operator === "Exists") return true;
  return (toleration.value ?? "") === (taint.value ?? "");
}

/** The taints that keep a pod off a node: NoSchedule and NoExecute taints no toleration matches. */
export function untoleratedTaints(taints: readonly Taint[], tolerations: readonly Toleration[]): Taint[] {
  return taints.filter((t) => t.effect !== "PreferNoSchedule" && !tolerations.some((tol) => toleratesTaint(tol, t)));
}

export type AzureProviderIdParts =
  | { subscriptionId: string; resourceGroup: string; scaleSet: string; instanceId: number | string }
  | { subscriptionId: string; resourceGroup: string; vmName: string };

/** `spec.providerID` as the Azure cloud provider writes it (resource group lowercased, as AKS shows it). */
export function azureProviderId(parts: AzureProviderIdParts): string {
  const base = `azure:///subscriptions/${parts.subscriptionId}/resourceGroups/${parts.resourceGroup.toLowerCase()}/providers/Microsoft.Compute`;
  return "scaleSet" in parts ? `${base}/virtualMachineScaleSets/${parts.scaleSet}/virtualMachines/${parts.instanceId}` : `${base}/virtualMachines/${parts.vmName}`;
}

export function taintsOf(node: Record<string, unknown>): Taint[] {
  const spec = node["spec"];
  if (typeof spec !== "object" || spec === null) return [];
  const taints = (spec as Record<string, unknown>)["taints"];
  return Array.isArray(taints) ? (taints as Taint[]) : [];
}

export interface NodeObjectInput {
  name: string;
  address: string;
  podCidr: string;
  labels: Record<string, string>;
  taints: readonly Taint[];
  providerId: string | undefined;
}

export function nodeObject(n: NodeObjectInput): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name: n.name, labels: { "kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", ...n.labels } },
    spec: { podCIDR: n.podCidr, podCIDRs: [n.podCidr], ...(n.providerId ? { providerID: n.providerId } : {}), ...(n.taints.length ? { taints: n.taints } : {}) },
  };
}

export function nodeStatus(n: NodeObjectInput, now: Date): Record<string, unknown> {
  const t = now.toISOString().replace(/\.\d+Z$/, "Z");
  return {
    addresses: [
      { type: "InternalIP", address: n.address },
      { type: "Hostname", address: n.name },
    ],
    conditions: [{ type: "Ready", status: "True", reason: "KubeletReady", message: "kubelet is posting ready status", lastHeartbeatTime: t, lastTransitionTime: t }],
    nodeInfo: { operatingSystem: "linux", architecture: "amd64", kubeletVersion: "v1.31.4", containerRuntimeVersion: "netns://podidentity-testbed", osImage: "podidentity testbed (Linux network namespace)" },
  };
}

export interface PodObjectInput {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  hostNetwork: boolean;
  tolerations: readonly Toleration[];
  /** The node the pod must run on (a `kubernetes.io/hostname` node selector), if any. */
  requiredNode: string | undefined;
  nodeName: string | undefined;
}

export function podObject(p: PodObjectInput): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: p.name, namespace: p.namespace, labels: p.labels, ...(Object.keys(p.annotations).length ? { annotations: p.annotations } : {}) },
    spec: {
      containers: [{ name: "app", image: "podidentity-testbed/netns:latest" }],
      ...(p.hostNetwork ? { hostNetwork: true } : {}),
      ...(p.tolerations.length ? { tolerations: p.tolerations } : {}),
      ...(p.requiredNode ? { nodeSelector: { "kubernetes.io/hostname": p.requiredNode } } : {}),
      ...(p.nodeName ? { nodeName: p.nodeName } : {}),
    },
  };
}

export function runningPodStatus(podIp: string, hostIp: string, now: Date): Record<string, unknown> {
  const t = now.toISOString().replace(/\.\d+Z$/, "Z");
  return {
    phase: "Running",
    podIP: podIp,
    podIPs: [{ ip: podIp }],
    hostIP: hostIp,
    hostIPs: [{ ip: hostIp }],
    startTime: t,
    conditions: ["PodScheduled", "Initialized", "ContainersReady", "Ready"].map((type) => ({ type, status: "True", lastTransitionTime: t })),
    containerStatuses: [{ name: "app", image: "podidentity-testbed/netns:latest", imageID: "", ready: true, started: true, restartCount: 0, state: { running: { startedAt: t } } }],
  };
}

/**
 * What the kubelet reports once a deleted pod's containers stopped: the container terminated (exit code 128+n for
 * signal n, as container runtimes report it), not ready, and the terminal phase (Succeeded only when it exited 0).
 */
export function terminatedPodStatus(exitCode: number, now: Date): Record<string, unknown> {
  const t = now.toISOString().replace(/\.\d+Z$/, "Z");
  return {
    phase: exitCode === 0 ? "Succeeded" : "Failed",
    conditions: ["Ready", "ContainersReady"].map((type) => ({ type, status: "False", reason: "PodCompleted", lastTransitionTime: t })),
    containerStatuses: [
      {
        name: "app",
        image: "podidentity-testbed/netns:latest",
        imageID: "",
        ready: false,
        started: false,
        restartCount: 0,
        state: { terminated: { exitCode, reason: exitCode === 0 ? "Completed" : "Error", finishedAt: t } },
      },
    ],
  };
}

export function pendingPodStatus(taints: readonly Taint[], nodeCount: number, now: Date): Record<string, unknown> {
  const t = now.toISOString().replace(/\.\d+Z$/, "Z");
  const why = taints.map((x) => `{${x.key}${x.value ? `: ${x.value}` : ""}}`).join(", ");
  return {
    phase: "Pending",
    conditions: [
      {
        type: "PodScheduled",
        status: "False",
        reason: "Unschedulable",
        message: `0/${nodeCount} nodes are available: ${nodeCount} node(s) had untolerated taint ${why || "(none)"}. preemption: 0/${nodeCount} nodes are available.`,
        lastTransitionTime: t,
      },
    ],
  };
}
