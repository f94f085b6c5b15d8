import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { runCli } from "../src/cli";
import { INSTALL_VERSION } from "../src/index";

function cli(...argv: string[]): { code: number; stdout: string; stderr: string } {
  let stdout = "";
  let stderr = "";
  const code = runCli(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), readFile: (p) => readFileSync(p, "utf8") });
  return { code, stdout, stderr };
}

const docs = (yaml: string): Record<string, unknown>[] =>
  parseAllDocuments(yaml).map((d) => d.toJS() as Record<string, unknown>).filter((d) => d !== null);

function valuesFile(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), "install-values-")), "values.yaml");
  writeFileSync(path, text);
  return path;
}

// v1.8 chart values as the seeds' Helm installs used them: identities in the release namespace, capitalised keys.
const V18_VALUES = `
operationMode: standard
forceNamespaced: "true"
azureIdentities:
  "kv-reader":
    namespace: ""
    type: 0
    ResourceID: /subscriptions/0000/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/kv-reader
    ClientID: 5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b
    binding:
      name: kv-reader-binding
      selector: kv-reader
  "shop-id":
    namespace: shop
    type: 0
    resourceID: /subscriptions/0000/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/shop
    clientID: 6f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b
    binding:
      name: shop-binding
      selector: shop
`;

describe("podidentity-install render", () => {
  it("prints the manifests with the chosen options, and nothing on stderr", () => {
    const r = cli("render", "--namespace", "podidentity", "--image-registry", "myacr.azurecr.io/pi", "--tag", "1.0.0", "--force-namespaced=false");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    const objects = docs(r.stdout);
    expect(objects[0]).toMatchObject({ kind: "Namespace", metadata: { name: "podidentity" } });
    expect(r.stdout).toContain("image: myacr.azurecr.io/pi/podidentity-mic:1.0.0");
    expect(r.stdout).toContain("image: myacr.azurecr.io/pi/podidentity-nmi:1.0.0");
    expect(r.stdout.match(/^\s+- --force-namespaced=false$/gm)).toHaveLength(2);
    expect(r.stdout).toMatch(/^# Rendered by `podidentity-install render --namespace podidentity/m);
  });

  it("--immutable-user-msis and --azure-json-secret reach MIC", () => {
    const r = cli("render", "--immutable-user-msis", "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b,6f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b", "--azure-json-secret", "cluster-azure-json");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("--immutable-user-msis=5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b,6f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b");
    expect(r.stdout).toContain("secretName: cluster-azure-json");
  });

  it("renders identities from v1.8 chart values and warns on stderr about bindings v1.8 served across namespaces", () => {
    const r = cli("render", "--values", valuesFile(V18_VALUES));
    expect(r.code, r.stderr).toBe(0);
    const objects = docs(r.stdout);
    const ids = objects.filter((o) => o["kind"] === "AzureIdentity").map((o) => o["metadata"]);
    expect(ids).toEqual([{ name: "kv-reader", namespace: "kube-system" }, { name: "shop-id", namespace: "shop" }]);
    expect(objects.find((o) => o["kind"] === "AzureIdentity")?.["spec"]).toMatchObject({ resourceID: expect.any(String), clientID: "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b" });
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^warning: AzureIdentityBinding kube-system\/kv-reader-binding is in the install namespace kube-system/);
    expect(r.stderr).toContain("--force-namespaced=false");
  });

  it("no cross-namespace warning when --force-namespaced=false keeps v1.8's matching", () => {
    const r = cli("render", "--values", valuesFile(V18_VALUES), "--force-namespaced=false");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
  });

  it("flags override the values file; values override the defaults", () => {
    const path = valuesFile("operationMode: managed\nforceNamespaced: true\n");
    expect(docs(cli("render", "--values", path).stdout).some((o) => o["kind"] === "Deployment")).toBe(false);
    expect(docs(cli("render", "--values", path, "--mode", "standard").stdout).some((o) => o["kind"] === "Deployment")).toBe(true);
  });

  it("service-principal identities need --allow-access-to-secrets, which adds secrets get to NMI", () => {
    const sp = valuesFile(`
azureIdentities:
  sp:
    namespace: shop
    type: 1
    TenantID: 72f988bf-86f1-41af-91ab-2d7cd011db47
    ClientID: 5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b
    ClientPassword: { Name: sp-secret, Namespace: shop }
    binding: { name: sp, selector: sp }
`);
    const refused = cli("render", "--values", sp);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe("");
    expect(refused.stderr).toMatch(/shop\/sp\) need NMI to read their clientPassword Secret: add --allow-access-to-secrets/);
    const ok = cli("render", "--values", sp, "--allow-access-to-secrets");
    expect(ok.code, ok.stderr).toBe(0);
    const nmiRole = docs(ok.stdout).find((o) => o["kind"] === "ClusterRole" && (o["metadata"] as { name: string }).name === "podidentity-nmi");
    expect(nmiRole?.["rules"]).toContainEqual({ apiGroups: [""], resources: ["secrets"], verbs: ["get"] });
    expect(cli("render").stdout).not.toContain("secrets");
  });

  it("fails with one line naming the problem, and prints no YAML", () => {
    for (const argv of [
      ["render", "--mode", "managed", "--force-namespaced=false"],
      ["render", "--tag", "latest"],
      ["render", "--values", "/nonexistent/values.yaml"],
      ["render", "--values", valuesFile("azureIdentities:\n  x:\n    type: 0\n    binding: { selector: x }\n")],
      ["render", "--force-namespaced=maybe"],
    ]) {
      const r = cli(...argv);
      expect(r.code, argv.join(" ")).toBe(1);
      expect(r.stdout, argv.join(" ")).toBe("");
      expect(r.stderr, argv.join(" ")).toMatch(/\S/);
    }
    expect(cli("render", "--values", valuesFile("azureIdentities:\n  x:\n    type: 0\n    binding: { selector: x }\n")).stderr).toMatch(/azureIdentities\.x: spec\.resourceID/);
  });

  it("--version prints the version", () => {
    const r = cli("--version");
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(INSTALL_VERSION);
  });
});
