import { describe, expect, it } from "vitest";
import { NMI_NOT_READY_TAINT } from "../src/interception/node-taint";
import { daemonSetTargetsNode, nodeSelectorTermsMatch, requirementMatches, toleratesTaint, type PlacementNode, type PodPlacementSpec } from "../src/interception/node-targeting";

const node = (labels: Record<string, string> = {}, taints: PlacementNode["spec"] = {}, name = "aks-nodepool1-12345678-vmss000000"): PlacementNode => ({
  metadata: { name, labels },
  spec: taints,
});

describe("requirementMatches: each node selector operator, as the scheduler evaluates it", () => {
  const labels = { pool: "gpu", zone: "2", "kubernetes.io/os": "linux", cores: "16" };

  it("In: the label exists and its value is listed", () => {
    expect(requirementMatches({ key: "pool", operator: "In", values: ["cpu", "gpu"] }, labels)).toBe(true);
    expect(requirementMatches({ key: "pool", operator: "In", values: ["cpu"] }, labels)).toBe(false);
    expect(requirementMatches({ key: "missing", operator: "In", values: [""] }, labels)).toBe(false);
  });

  it("NotIn: the label is absent or its value is not listed", () => {
    expect(requirementMatches({ key: "pool", operator: "NotIn", values: ["cpu"] }, labels)).toBe(true);
    expect(requirementMatches({ key: "pool", operator: "NotIn", values: ["gpu"] }, labels)).toBe(false);
    expect(requirementMatches({ key: "missing", operator: "NotIn", values: ["x"] }, labels)).toBe(true);
  });

  it("Exists and DoesNotExist look at the key only", () => {
    expect(requirementMatches({ key: "zone", operator: "Exists" }, labels)).toBe(true);
    expect(requirementMatches({ key: "missing", operator: "Exists" }, labels)).toBe(false);
    expect(requirementMatches({ key: "missing", operator: "DoesNotExist" }, labels)).toBe(true);
    expect(requirementMatches({ key: "zone", operator: "DoesNotExist" }, labels)).toBe(false);
  });

  it("Gt and Lt compare integers, need exactly one value, and never match a non-integer or absent label", () => {
    expect(requirementMatches({ key: "cores", operator: "Gt", values: ["8"] }, labels)).toBe(true);
    expect(requirementMatches({ key: "cores", operator: "Gt", values: ["16"] }, labels)).toBe(false);
    expect(requirementMatches({ key: "cores", operator: "Lt", values: ["32"] }, labels)).toBe(true);
    expect(requirementMatches({ key: "cores", operator: "Lt", values: ["16"] }, labels)).toBe(false);
    // numeric, not lexical: "16" > "9" as numbers
    expect(requirementMatches({ key: "cores", operator: "Gt", values: ["9"] }, labels)).toBe(true);
    expect(requirementMatches({ key: "cores", operator: "Gt", values: ["-1"] }, labels)).toBe(true);
    expect(requirementMatches({ key: "pool", operator: "Gt", values: ["1"] }, labels)).toBe(false);
    expect(requirementMatches({ key: "cores", operator: "Gt", values: ["1", "2"] }, labels)).toBe(false);
    expect(requirementMatches({ key: "cores", operator: "Gt", values: ["x"] }, labels)).toBe(false);
    expect(requirementMatches({ key: "missing", operator: "Lt", values: ["100"] }, labels)).toBe(false);
  });

  it("an unknown operator matches nothing", () => {
    expect(requirementMatches({ key: "pool", operator: "Equals", values: ["gpu"] }, labels)).toBe(false);
  });
});

describe("nodeSelectorTermsMatch: required node affinity", () => {
  const n = node({ pool: "gpu", "kubernetes.io/os": "linux" });

  it("terms are ORed, a term's expressions ANDed", () => {
    const gpuLinux = { matchExpressions: [{ key: "pool", operator: "In", values: ["gpu"] }, { key: "kubernetes.io/os", operator: "In", values: ["linux"] }] };
    const gpuWindows = { matchExpressions: [{ key: "pool", operator: "In", values: ["gpu"] }, { key: "kubernetes.io/os", operator: "In", values: ["windows"] }] };
    expect(nodeSelectorTermsMatch([gpuLinux], n)).toBe(true);
    expect(nodeSelectorTermsMatch([gpuWindows], n)).toBe(false);
    expect(nodeSelectorTermsMatch([gpuWindows, gpuLinux], n)).toBe(true);
  });

  it("matchFields matches metadata.name with In and NotIn", () => {
    expect(nodeSelectorTermsMatch([{ matchFields: [{ key: "metadata.name", operator: "In", values: ["aks-nodepool1-12345678-vmss000000"] }] }], n)).toBe(true);
    expect(nodeSelectorTermsMatch([{ matchFields: [{ key: "metadata.name", operator: "In", values: ["other-node"] }] }], n)).toBe(false);
    expect(nodeSelectorTermsMatch([{ matchFields: [{ key: "metadata.name", operator: "NotIn", values: ["aks-nodepool1-12345678-vmss000000"] }] }], n)).toBe(false);
    // a field the scheduler does not know is never present
    expect(nodeSelectorTermsMatch([{ matchFields: [{ key: "spec.unschedulable", operator: "In", values: ["false"] }] }], n)).toBe(false);
  });

  it("an empty term and an empty list of terms match nothing", () => {
    expect(nodeSelectorTermsMatch([{}], n)).toBe(false);
    expect(nodeSelectorTermsMatch([{ matchExpressions: [], matchFields: [] }], n)).toBe(false);
    expect(nodeSelectorTermsMatch([], n)).toBe(false);
  });
});

describe("toleratesTaint", () => {
  const taint = { key: "dedicated", value: "infra", effect: "NoSchedule" };

  it("Equal (the default operator) needs key, value and effect to agree; an empty effect matches every effect", () => {
    expect(toleratesTaint({ key: "dedicated", operator: "Equal", value: "infra", effect: "NoSchedule" }, taint)).toBe(true);
    expect(toleratesTaint({ key: "dedicated", value: "infra" }, taint)).toBe(true);
    expect(toleratesTaint({ key: "dedicated", value: "apps" }, taint)).toBe(false);
    expect(toleratesTaint({ key: "dedicated", value: "infra", effect: "NoExecute" }, taint)).toBe(false);
    expect(toleratesTaint({ key: "other", value: "infra" }, taint)).toBe(false);
  });

  it("Exists ignores the value; with no key it tolerates every taint (the rendered NMI DaemonSet's toleration)", () => {
    expect(toleratesTaint({ key: "dedicated", operator: "Exists" }, taint)).toBe(true);
    expect(toleratesTaint({ operator: "Exists" }, taint)).toBe(true);
    expect(toleratesTaint({ operator: "Exists", effect: "NoExecute" }, taint)).toBe(false);
  });
});

describe("daemonSetTargetsNode: would the DaemonSet controller run NMI on this node", () => {
  const template: PodPlacementSpec = { nodeSelector: { "kubernetes.io/os": "linux" }, tolerations: [{ key: "dedicated", operator: "Exists" }], hostNetwork: true };

  it("targets a node matching the nodeSelector whose taints are tolerated", () => {
    expect(daemonSetTargetsNode(template, node({ "kubernetes.io/os": "linux" }, { taints: [{ key: "dedicated", value: "x", effect: "NoExecute" }] }))).toEqual({ targeted: true });
  });

  it("a node relabelled out of the nodeSelector is no longer targeted", () => {
    const result = daemonSetTargetsNode(template, node({ "kubernetes.io/os": "windows" }));
    expect(result).toMatchObject({ targeted: false, reason: "node-selector" });
    expect(daemonSetTargetsNode(template, node({}))).toMatchObject({ targeted: false, reason: "node-selector" });
  });

  it("required node affinity decides too", () => {
    const withAffinity: PodPlacementSpec = {
      ...template,
      affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: "podidentity", operator: "NotIn", values: ["off"] }] }] } } },
    };
    expect(daemonSetTargetsNode(withAffinity, node({ "kubernetes.io/os": "linux" }))).toEqual({ targeted: true });
    expect(daemonSetTargetsNode(withAffinity, node({ "kubernetes.io/os": "linux", podidentity: "off" }))).toMatchObject({ targeted: false, reason: "node-affinity" });
  });

  it("an untolerated NoSchedule or NoExecute taint ends targeting; PreferNoSchedule does not", () => {
    const linux = { "kubernetes.io/os": "linux" };
    expect(daemonSetTargetsNode(template, node(linux, { taints: [{ key: "sku", value: "gpu", effect: "NoSchedule" }] }))).toMatchObject({ targeted: false, reason: "taint" });
    expect(daemonSetTargetsNode(template, node(linux, { taints: [{ key: "sku", value: "gpu", effect: "NoExecute" }] }))).toMatchObject({ targeted: false, reason: "taint" });
    expect(daemonSetTargetsNode(template, node(linux, { taints: [{ key: "sku", value: "gpu", effect: "PreferNoSchedule" }] }))).toEqual({ targeted: true });
  });

  it("taints the DaemonSet controller tolerates for every daemon pod (cordon, node problems) keep the node targeted", () => {
    const taints = [
      { key: "node.kubernetes.io/unschedulable", effect: "NoSchedule" },
      { key: "node.kubernetes.io/not-ready", effect: "NoExecute" },
      { key: "node.kubernetes.io/unreachable", effect: "NoExecute" },
      { key: "node.kubernetes.io/memory-pressure", effect: "NoSchedule" },
      { key: "node.kubernetes.io/disk-pressure", effect: "NoSchedule" },
      { key: "node.kubernetes.io/pid-pressure", effect: "NoSchedule" },
      { key: "node.kubernetes.io/network-unavailable", effect: "NoSchedule" },
    ];
    expect(daemonSetTargetsNode({ nodeSelector: {}, hostNetwork: true }, node({}, { taints }))).toEqual({ targeted: true });
    // network-unavailable is tolerated for hostNetwork daemon pods only
    expect(daemonSetTargetsNode({ hostNetwork: false }, node({}, { taints }))).toMatchObject({ targeted: false, reason: "taint" });
  });

  it("NMI's own startup taint is skipped when asked (it is NMI's to remove, not a sign of leaving the node)", () => {
    const n = node({ "kubernetes.io/os": "linux" }, { taints: [{ ...NMI_NOT_READY_TAINT }] });
    expect(daemonSetTargetsNode({ nodeSelector: { "kubernetes.io/os": "linux" } }, n)).toMatchObject({ targeted: false, reason: "taint" });
    expect(daemonSetTargetsNode({ nodeSelector: { "kubernetes.io/os": "linux" } }, n, { ignoredTaintKeys: [NMI_NOT_READY_TAINT.key] })).toEqual({ targeted: true });
  });
});
