import { DEFAULT_MIC_OPTIONS } from "@podidentity/mic";
import { describe, expect, it } from "vitest";
import { checkRbacCoverage, INSTALL_NAMES, renderManifests, rulesForServiceAccount } from "../src/index";

describe("MIC's Lease: one default name everywhere", () => {
  it("the rendered Role's Lease is MIC's default name, v1.8's aad-pod-identity-mic", () => {
    expect(DEFAULT_MIC_OPTIONS.leaderElection.name).toBe("aad-pod-identity-mic");
    expect(INSTALL_NAMES.leaseName).toBe(DEFAULT_MIC_OPTIONS.leaderElection.name);
  });

  it("MIC run without --leader-election-name (its default Lease, in the install namespace) is allowed every Lease request it makes", () => {
    const namespace = "kube-system";
    const rules = rulesForServiceAccount(renderManifests(), namespace, INSTALL_NAMES.mic);
    const name = DEFAULT_MIC_OPTIONS.leaderElection.name;
    const requests = [
      { verb: "get", name },
      { verb: "create", name: undefined },
      { verb: "update", name },
    ].map((r) => ({ ...r, group: "coordination.k8s.io", resource: "leases", subresource: undefined, namespace }));
    expect(checkRbacCoverage(requests, rules).denied).toEqual([]);
  });

  it("the rendered Deployment names the same Lease explicitly", () => {
    const deployment = renderManifests().find((o) => o.kind === "Deployment") as { spec: { template: { spec: { containers: Array<{ args?: string[] }> } } } };
    expect(deployment.spec.template.spec.containers[0]?.args).toContain(`--leader-election-name=${DEFAULT_MIC_OPTIONS.leaderElection.name}`);
  });
});
