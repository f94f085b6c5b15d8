import { describe, expect, it } from "vitest";
import { checkRbacCoverage, INSTALL_NAMES, nmiNamespaceRules, renderManifests, requestsFromCounts, rulesForServiceAccount } from "../src/index";

const NS = "kube-system";
const standard = renderManifests();
const mic = rulesForServiceAccount(standard, NS, INSTALL_NAMES.mic);
const nmi = rulesForServiceAccount(standard, NS, INSTALL_NAMES.nmi);

// What MIC does against the API, as the testbed's KubeApiServer.requestCounts({ user }) reports it.
const MIC_LOG = {
  "list pods": 1,
  "watch pods": 3,
  "list nodes": 1,
  "watch nodes": 2,
  "list azureidentities": 1,
  "watch azureidentities": 1,
  "list azureidentitybindings": 1,
  "watch azureidentitybindings": 1,
  "list azureassignedidentities": 1,
  "watch azureassignedidentities": 1,
  "create azureassignedidentities": 4,
  "patch azureassignedidentities": 4,
  "delete azureassignedidentities": 1,
  "patch azureidentities/status": 2,
  "create events": 5,
  "get leases": 30,
  "create leases": 1,
  "update leases": 29,
};

const NMI_LOG = {
  "list pods": 1,
  "watch pods": 1,
  "list azureidentities": 1,
  "watch azureidentities": 1,
  "list azureidentitybindings": 1,
  "watch azureidentitybindings": 1,
  "list azurepodidentityexceptions": 1,
  "watch azurepodidentityexceptions": 1,
  "list azureassignedidentities": 1,
  "watch azureassignedidentities": 1,
  "get nodes": 1,
  "update nodes": 1,
};

describe("checkRbacCoverage", () => {
  it("parses requestCounts() keys, subresources included", () => {
    expect(requestsFromCounts({ "update pods/status": 2 })).toEqual([{ request: { verb: "update", resource: "pods", subresource: "status" }, count: 2 }]);
  });

  it("finds the rules bound to each service account: MIC's ClusterRole and its Lease Role, NMI's ClusterRole and its DaemonSet Role", () => {
    expect(mic.cluster.length).toBeGreaterThan(0);
    expect(mic.namespaced).toEqual([{ namespace: NS, rules: expect.any(Array) }]);
    expect(nmi.cluster.length).toBeGreaterThan(0);
    expect(nmi.namespaced).toEqual([{ namespace: NS, rules: nmiNamespaceRules() }]);
    expect(rulesForServiceAccount(standard, "default", INSTALL_NAMES.mic)).toEqual({ cluster: [], namespaced: [] });
  });

  it("MIC's and NMI's usual requests are all allowed", () => {
    expect(checkRbacCoverage(MIC_LOG, mic).denied).toEqual([]);
    expect(checkRbacCoverage(NMI_LOG, nmi).denied).toEqual([]);
  });

  it("reports what RBAC does not allow, with counts: secrets without service principals, another component's verbs", () => {
    const r = checkRbacCoverage({ ...NMI_LOG, "get secrets": 3, "create azureassignedidentities": 1, "delete pods": 1 }, nmi);
    expect(r.denied).toEqual([
      { request: "create azureassignedidentities", count: 1 },
      { request: "delete pods", count: 1 },
      { request: "get secrets", count: 3 },
    ]);
    const withSecrets = rulesForServiceAccount(renderManifests({ allowAccessToSecrets: true }), NS, INSTALL_NAMES.nmi);
    expect(checkRbacCoverage({ "get secrets": 3 }, withSecrets).denied).toEqual([]);
  });

  it("lists grants nothing used, to compare with the documented extras", () => {
    const r = checkRbacCoverage(NMI_LOG, nmi);
    // nodes list/watch (granted for a future node informer) and patch (documented: the startup taint) were unused here.
    expect(r.unused).toEqual(expect.arrayContaining(["list nodes", "watch nodes", "patch nodes", "get pods"]));
    expect(r.unused).not.toContain("list pods");
  });

  it("with full request records, Role rules apply only in their namespace and name-limited rules only to that name", () => {
    const lease = { verb: "update", group: "coordination.k8s.io", resource: "leases" };
    expect(checkRbacCoverage([{ ...lease, namespace: NS, name: INSTALL_NAMES.leaseName }], mic).denied).toEqual([]);
    expect(checkRbacCoverage([{ ...lease, namespace: "default", name: INSTALL_NAMES.leaseName }], mic).denied).toHaveLength(1);
    expect(checkRbacCoverage([{ ...lease, namespace: NS, name: "someone-elses-lease" }], mic).denied).toHaveLength(1);
    expect(checkRbacCoverage([{ verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: NS }], mic).denied).toEqual([]);
    expect(checkRbacCoverage([{ verb: "list", group: "coordination.k8s.io", resource: "leases", namespace: NS }], mic).denied).toHaveLength(1);
    // NMI reads its own DaemonSet on SIGTERM, and only that one, only with get.
    const daemonSet = { verb: "get", group: "apps", resource: "daemonsets" };
    expect(checkRbacCoverage([{ ...daemonSet, namespace: NS, name: INSTALL_NAMES.nmi }], nmi).denied).toEqual([]);
    expect(checkRbacCoverage([{ ...daemonSet, namespace: NS, name: "kube-proxy" }], nmi).denied).toHaveLength(1);
    expect(checkRbacCoverage([{ ...daemonSet, namespace: "default", name: INSTALL_NAMES.nmi }], nmi).denied).toHaveLength(1);
    expect(checkRbacCoverage([{ verb: "list", group: "apps", resource: "daemonsets", namespace: NS }], nmi).denied).toHaveLength(1);
    // Events exist in two groups; MIC is only allowed the core one.
    expect(checkRbacCoverage([{ verb: "create", group: "events.k8s.io", resource: "events", namespace: "shop" }], mic).denied).toHaveLength(1);
  });

  it("managed mode: NMI may not read AzureAssignedIdentities (there is no MIC to write them)", () => {
    const managedNmi = rulesForServiceAccount(renderManifests({ mode: "managed" }), NS, INSTALL_NAMES.nmi);
    expect(checkRbacCoverage({ "list azureassignedidentities": 1 }, managedNmi).denied).toEqual([{ request: "list azureassignedidentities", count: 1 }]);
  });
});
