import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { checkKubeVersion, MIN_KUBERNETES_VERSION, renderManifests, resolveInstallOptions } from "../src/index";
import { runCli } from "../src/cli";

function cli(...argv: string[]): { code: number; stdout: string; stderr: string } {
  let stdout = "";
  let stderr = "";
  const code = runCli(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), readFile: (p) => readFileSync(p, "utf8") });
  return { code, stdout, stderr };
}

describe("minimum Kubernetes version", () => {
  it("is 1.21, the oldest that serves every API version the manifests use (policy/v1 PDB)", () => {
    expect(MIN_KUBERNETES_VERSION).toEqual({ major: 1, minor: 21 });
    const apiVersions = new Set(renderManifests().map((m) => m.apiVersion));
    expect(apiVersions).toContain("policy/v1");
    // Nothing rendered needs more than 1.21: every API version used is served by 1.21.
    const servedBy121 = new Set(["v1", "apps/v1", "rbac.authorization.k8s.io/v1", "policy/v1", "aadpodidentity.k8s.io/v1", "coordination.k8s.io/v1"]);
    for (const v of apiVersions) expect(servedBy121, v).toContain(v);
  });

  it("accepts 1.21 and later, in the spellings kubectl version and providers print", () => {
    for (const v of ["v1.21.0", "1.21", "v1.28.4", "v1.29.1-gke.1589000", "v1.30.2+k3s1", "2.0"]) expect(() => checkKubeVersion(v), v).not.toThrow();
  });

  it("refuses older clusters naming what needs more, and versions that are not one", () => {
    expect(() => checkKubeVersion("v1.20.2")).toThrow(/below the minimum Kubernetes 1\.21.*PodDisruptionBudget policy\/v1/);
    expect(() => checkKubeVersion("1.18")).toThrow(/seccompProfile/);
    expect(() => checkKubeVersion("latest")).toThrow(/--kube-version must look like/);
    expect(() => resolveInstallOptions({ kubeVersion: "v1.20.0" })).toThrow(/--kube-version v1\.20\.0/);
  });

  it("render --kube-version: prints nothing and exits 1 below the minimum, renders as without it from 1.21", () => {
    const old = cli("render", "--kube-version", "v1.20.2");
    expect(old.code).toBe(1);
    expect(old.stdout).toBe("");
    expect(old.stderr).toMatch(/podidentity-install: --kube-version v1\.20\.2 is below the minimum/);
    const ok = cli("render", "--kube-version", "v1.21.0");
    expect(ok.code, ok.stderr).toBe(0);
    const plain = cli("render");
    expect(ok.stdout.slice(ok.stdout.indexOf("\n---\n"))).toBe(plain.stdout.slice(plain.stdout.indexOf("\n---\n")));
  });
});
