import { readdirSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import {
  customResourceDefinitions,
  IdentityCatalog,
  normalizeAzureAssignedIdentity,
  normalizeAzureIdentity,
  normalizeAzureIdentityBinding,
  normalizeAzurePodIdentityException,
  podMatchesException,
  type AzureIdentity,
  type AzureIdentityBinding,
  type AzurePodIdentityException,
  type JSONSchemaProps,
  type Normalized,
} from "../src/index";
import { pruneLikeApiServer } from "./helpers/api-server-pruning";
import { fixtureObject, loadFixture } from "./helpers/fixtures";

const NORMALIZERS: Record<string, (input: unknown) => Normalized<unknown>> = {
  AzureIdentity: normalizeAzureIdentity,
  AzureIdentityBinding: normalizeAzureIdentityBinding,
  AzureAssignedIdentity: normalizeAzureAssignedIdentity,
  AzurePodIdentityException: normalizeAzurePodIdentityException,
};

function schemaFor(kind: string): JSONSchemaProps {
  const crd = customResourceDefinitions().find((c) => c.spec.names.kind === kind);
  const schema = crd?.spec.versions[0]?.schema.openAPIV3Schema;
  if (schema === undefined) throw new Error(`no schema for ${kind}`);
  return schema;
}

/** What a user gets back after `kubectl apply` of the document: the API server's pruning, then our reading. */
function applyAndRead(doc: Record<string, unknown>) {
  const kind = doc.kind as string;
  const pruned = pruneLikeApiServer(schemaFor(kind), doc);
  const normalize = NORMALIZERS[kind] as (input: unknown) => Normalized<unknown>;
  return { errors: pruned.errors, stored: normalize(pruned.value), direct: normalize(doc) };
}

const FIXTURE_DIR = resolve(import.meta.dirname, "fixtures");
const ours = (doc: Record<string, unknown>) => typeof doc.kind === "string" && doc.kind in NORMALIZERS;
const cases = readdirSync(FIXTURE_DIR)
  .filter((f) => !f.includes("unsubstituted"))
  .flatMap((file) => loadFixture(file).filter(ours).map((doc) => [file, doc.kind, (doc.metadata as { name: string }).name, doc] as const));

describe("manifests from the guides users follow", () => {
  it("cover every kind users write", () => {
    expect(new Set(cases.map(([, kind]) => kind))).toEqual(
      new Set(["AzureIdentity", "AzureIdentityBinding", "AzurePodIdentityException", "AzureAssignedIdentity"]),
    );
  });

  it.each(cases)("%s: %s %s applies, survives pruning whole, and is usable", (_file, _kind, _name, doc) => {
    const { errors, stored, direct } = applyAndRead(doc);
    expect(errors).toEqual([]);
    expect(stored.object).toEqual(direct.object);
    expect(stored.problems.filter((p) => p.severity !== "info")).toEqual([]);
    expect(stored.ok).toBe(true);
  });

  it("would lose the capitalised keys under a schema declaring only v1.8's camelCase keys", () => {
    const v18Like = structuredClone(schemaFor("AzureIdentity"));
    const spec = v18Like.properties?.spec?.properties ?? {};
    for (const key of Object.keys(spec)) if (/^[A-Z]/.test(key)) delete spec[key];
    const doc = fixtureObject("seed-001-managed-identity-with-kubernetes.yaml", "AzureIdentity", "podidentitydemouser");
    const pruned = pruneLikeApiServer(v18Like, doc);
    expect(normalizeAzureIdentity(pruned.value).ok).toBe(false);
    expect(applyAndRead(doc).stored.ok).toBe(true);
  });

  it("seeds/001: the capitalised identity and binding give the labelled pod its identity", () => {
    const file = "seed-001-managed-identity-with-kubernetes.yaml";
    const identity = applyAndRead(fixtureObject(file, "AzureIdentity", "podidentitydemouser")).stored.object as AzureIdentity;
    expect(identity.spec).toMatchObject({ type: 0, clientID: "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b" });
    expect(identity.spec.resourceID).toMatch(/userAssignedIdentities\/podidentitydemouser$/);
    const binding = applyAndRead(fixtureObject(file, "AzureIdentityBinding", "podidentitydemouser-binding")).stored
      .object as AzureIdentityBinding;
    expect(binding.spec).toEqual({ azureIdentity: "podidentitydemouser", selector: "demo-kv-access" });
    const pod = fixtureObject(file, "Pod", "keyvault-demo");
    const { matches } = new IdentityCatalog([binding], [identity]).match(pod, { forceNamespaced: true });
    expect(matches.map((m) => `${m.assignedIdentityNamespace}/${m.assignedIdentityName}`)).toEqual([
      "default/keyvault-demo-default-podidentitydemouser",
    ]);
  });

  it("seeds/001 pasted without substituting: applies, then is refused with the reason", () => {
    const doc = fixtureObject("seed-001-unsubstituted.yaml", "AzureIdentity", "podidentitydemouser");
    const { errors, stored } = applyAndRead(doc);
    expect(errors).toEqual([]);
    expect(stored.ok).toBe(false);
    expect(stored.problems.find((p) => p.code === "invalid-resource-id")?.message).toContain("<Resource ID of Managed Identity>");
  });

  it("seeds/002: a central aad-broker namespace serves its own pods; other namespaces need cluster-wide matching", () => {
    const file = "seed-002-podidentity-part-2.yaml";
    const identity = applyAndRead(fixtureObject(file, "AzureIdentity", "sql-identity")).stored.object as AzureIdentity;
    const binding = applyAndRead(fixtureObject(file, "AzureIdentityBinding", "sql-identity")).stored.object as AzureIdentityBinding;
    const catalog = new IdentityCatalog([binding], [identity]);
    const ownPod = fixtureObject(file, "Pod", "sql-client");
    expect(catalog.match(ownPod, { forceNamespaced: true }).matches).toHaveLength(1);
    // The guide says "the broker works across all namespaces by default": true of v1.8, not of our default.
    const elsewhere = { metadata: { name: "app", namespace: "shop", labels: { aadpodidbinding: "sql-identity" } } };
    expect(catalog.match(elsewhere, { forceNamespaced: true }).skipped.map((s) => s.reason)).toEqual(["namespace-mismatch"]);
    expect(catalog.match(elsewhere, { forceNamespaced: false }).matches).toHaveLength(1);
  });

  it("seeds/003: `type: 0  # comment` and canonical keys read as written", () => {
    const doc = fixtureObject("seed-003-secure-azure-access.yaml", "AzureIdentity", "my-pod-identity");
    const identity = applyAndRead(doc).stored.object as AzureIdentity;
    expect(identity.spec.type).toBe(0);
    expect(identity.metadata.namespace).toBe("default");
  });

  it("seeds/003 pasted as printed: `{client-id-guid}` is a YAML map — the API server refuses it, we report it", () => {
    const doc = fixtureObject("seed-003-unsubstituted.yaml", "AzureIdentity", "my-pod-identity");
    const { errors, direct } = applyAndRead(doc);
    expect(errors).toEqual(['spec.clientID: expected string, got {"client-id-guid":null}']);
    expect(direct.ok).toBe(false);
    expect(direct.problems.map((p) => `${p.code}:${p.path}`)).toEqual([
      "invalid-field:spec.clientID",
      "missing-client-id:spec.clientID",
    ]);
  });

  it("seeds/004: the AKS add-on's exception exempts its own pods in kube-system only", () => {
    const exception = applyAndRead(
      fixtureObject("seed-000-004-aks-addon.yaml", "AzurePodIdentityException", "aks-addon-exception"),
    ).stored.object as AzurePodIdentityException;
    const addonPod = { metadata: { namespace: "kube-system", labels: { "kubernetes.azure.com/managedby": "aks" } } };
    expect(podMatchesException(addonPod, [exception])).toBe(true);
    expect(podMatchesException({ metadata: { ...addonPod.metadata, namespace: "default" } }, [exception])).toBe(false);
    expect(podMatchesException(fixtureObject("seed-000-004-aks-addon.yaml", "Pod", "demo"), [exception])).toBe(false);
  });

  it("v1.8 docs: type 2's `{Name, Namespace}` secret reference (pruned by v1.8's own schema) works", () => {
    const doc = fixtureObject("v18-docs-identity-types.yaml", "AzureIdentity", "sp-certificate");
    const identity = applyAndRead(doc).stored.object as AzureIdentity;
    expect(identity.spec).toMatchObject({ type: 2, clientPassword: { name: "sp-cert", namespace: "apps" } });
    const multi = applyAndRead(fixtureObject("v18-docs-identity-types.yaml", "AzureIdentity", "sp-multi-tenant")).stored
      .object as AzureIdentity;
    expect(multi.spec.auxiliaryTenantIDs).toHaveLength(2);
  });

  it("community charts: `type: \"0\"` and `ClientId` read as type 0 and clientID", () => {
    const doc = fixtureObject("community-chart-mixed-case.yaml", "AzureIdentity", "orders-api");
    const identity = applyAndRead(doc).stored.object as AzureIdentity;
    expect(identity.spec).toMatchObject({ type: 0, clientID: "7b8c9d0e-1f2a-4b3c-8d4e-5f6a7b8c9d0e" });
  });
});
