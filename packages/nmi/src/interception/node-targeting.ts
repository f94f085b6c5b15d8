import type { Taint } from "../kube-objects";

/** One `matchExpressions` / `matchFields` entry of a node selector term. */
export interface NodeSelectorRequirement {
  key: string;
  operator: string;
  values?: string[];
}

export interface NodeSelectorTerm {
  matchExpressions?: NodeSelectorRequirement[];
  matchFields?: NodeSelectorRequirement[];
}

export interface Toleration {
  key?: string;
  operator?: string;
  value?: string;
  effect?: string;
  tolerationSeconds?: number;
}

/** The parts of a DaemonSet's pod template that decide which nodes it runs on. */
export interface PodPlacementSpec {
  nodeSelector?: Record<string, string>;
  affinity?: { nodeAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: { nodeSelectorTerms?: NodeSelectorTerm[] } } };
  tolerations?: Toleration[];
  hostNetwork?: boolean;
}

/** The parts of a Node that placement reads. */
export interface PlacementNode {
  metadata?: { name?: string; labels?: Record<string, string> };
  spec?: { taints?: Taint[] };
}

export type NodeTargeting =
  | { targeted: true }
  | { targeted: false; reason: "node-selector" | "node-affinity" | "taint"; detail: string };

/**
 * The tolerations the DaemonSet controller adds to every pod it creates, whatever the template says: its pods
 * survive node problems and cordoning (`kubectl drain` ignores DaemonSets), so these taints never mean "this node
 * is no longer targeted".
 */
export function daemonPodTolerations(hostNetwork: boolean): Toleration[] {
  return [
    { key: "node.kubernetes.io/not-ready", operator: "Exists", effect: "NoExecute" },
    { key: "node.kubernetes.io/unreachable", operator: "Exists", effect: "NoExecute" },
    { key: "node.kubernetes.io/disk-pressure", operator: "Exists", effect: "NoSchedule" },
    { key: "node.kubernetes.io/memory-pressure", operator: "Exists", effect: "NoSchedule" },
    { key: "node.kubernetes.io/pid-pressure", operator: "Exists", effect: "NoSchedule" },
    { key: "node.kubernetes.io/unschedulable", operator: "Exists", effect: "NoSchedule" },
    ...(hostNetwork ? [{ key: "node.kubernetes.io/network-unavailable", operator: "Exists", effect: "NoSchedule" }] : []),
  ];
}

/** Kubernetes' `Toleration.ToleratesTaint`: effect, key and (for Equal) value must agree; an empty key with Exists matches every key. */
export function toleratesTaint(toleration: Toleration, taint: Taint): boolean {
  if (toleration.effect !== undefined && toleration.effect !== "" && toleration.effect !== taint.effect) return false;
  if (toleration.key !== undefined && toleration.key !== "" && toleration.key !== taint.key) return false;
  const operator = toleration.operator === undefined || toleration.operator === "" ? "Equal" : toleration.operator;
  if (operator === "Exists") return true;
  if (operator === "Equal") return (toleration.value ?? "") === (taint.value ?? "");
  return false;
}

/** An integer as Kubernetes' Gt/Lt parse it (strconv.ParseInt), or undefined. */
function parseInteger(text: string | undefined): bigint | undefined {
  if (text === undefined || !/^[+-]?\d+$/.test(text)) return undefined;
  return BigInt(text);
}

/**
 * One node selector requirement against a node's labels (or, for matchFields, its fields), as the scheduler
 * evaluates it: In and NotIn compare the value (NotIn and DoesNotExist also match an absent key), Gt and Lt
 * need exactly one integer value and an integer label. An unknown operator matches nothing.
 */
export function requirementMatches(requirement: NodeSelectorRequirement, values: Readonly<Record<string, string>>): boolean {
  const has = Object.hasOwn(values, requirement.key);
  const value = has ? values[requirement.key] : undefined;
  const wanted = requirement.values ?? [];
  switch (requirement.operator) {
    case "In":
      return has && wanted.includes(value!);
    case "NotIn":
      return !has || !wanted.includes(value!);
    case "Exists":
      return has;
    case "DoesNotExist":
      return !has;
    case "Gt":
    case "Lt": {
      if (!has || wanted.length !== 1) return false;
      const actual = parseInteger(value);
      const bound = parseInteger(wanted[0]);
      if (actual === undefined || bound === undefined) return false;
      return requirement.operator === "Gt" ? actual > bound : actual < bound;
    }
    default:
      return false;
  }
}

/**
 * `requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms`: the terms are ORed, a term's requirements
 * ANDed; a term without requirements matches nothing, and neither does an empty list of terms. matchFields
 * knows one field, `metadata.name`.
 */
export function nodeSelectorTermsMatch(terms: readonly NodeSelectorTerm[], node: PlacementNode): boolean {
  const labels = node.metadata?.labels ?? {};
  const fields: Record<string, string> = node.metadata?.name !== undefined ? { "metadata.name": node.metadata.name } : {};
  return terms.some((term) => {
    const expressions = term.matchExpressions ?? [];
    const matchFields = term.matchFields ?? [];
    if (expressions.length === 0 && matchFields.length === 0) return false;
    return expressions.every((r) => requirementMatches(r, labels)) && matchFields.every((r) => requirementMatches(r, fields));
  });
}

/**
 * Whether the DaemonSet controller would run a pod of `template` on `node` (its `NodeShouldRunDaemonPod`):
 * `nodeSelector`, required node affinity, and the NoSchedule/NoExecute taints against the template's tolerations
 * plus the ones the controller adds. Taints whose key is in `ignoredTaintKeys` are skipped (NMI's own startup
 * taint). A NoSchedule taint counts too: the controller keeps a running pod there, but it would not create the
 * pod again after this one exits.
 */
export function daemonSetTargetsNode(template: PodPlacementSpec, node: PlacementNode, options: { ignoredTaintKeys?: readonly string[] } = {}): NodeTargeting {
  const labels = node.metadata?.labels ?? {};
  for (const [key, value] of Object.entries(template.nodeSelector ?? {})) {
    if (labels[key] !== value) {
      return { targeted: false, reason: "node-selector", detail: `the node's label ${key}=${labels[key] ?? "(absent)"} does not match nodeSelector ${key}=${value}` };
    }
  }
  const terms = template.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  if (terms !== undefined && !nodeSelectorTermsMatch(terms, node)) {
    return { targeted: false, reason: "node-affinity", detail: "the node matches none of the required node affinity's nodeSelectorTerms" };
  }
  const tolerations = [...(template.tolerations ?? []), ...daemonPodTolerations(template.hostNetwork === true)];
  const ignored = new Set(options.ignoredTaintKeys ?? []);
  for (const taint of node.spec?.taints ?? []) {
    if (taint.effect !== "NoSchedule" && taint.effect !== "NoExecute") continue;
    if (ignored.has(taint.key)) continue;
    if (!tolerations.some((t) => toleratesTaint(t, taint))) {
      return { targeted: false, reason: "taint", detail: `the node's taint ${taint.key}${taint.value ? `=${taint.value}` : ""}:${taint.effect} is not tolerated` };
    }
  }
  return { targeted: true };
}
