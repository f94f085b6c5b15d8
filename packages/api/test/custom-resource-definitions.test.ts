import { CustomResourceDefinition as CrdModel, type ICustomResourceDefinition } from "kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition";
import { describe, expect, it } from "vitest";
import {
  AZURE_IDENTITY_SPEC_SPELLINGS,
  customResourceDefinitions,
  RESOURCE_KINDS,
  type CustomResourceDefinition,
  type JSONSchemaProps,
} from "../src/index";
import { structuralViolations } from "./helpers/structural-schema";

const crds = customResourceDefinitions();
const byKind = (kind: string): CustomResourceDefinition => {
  const crd = crds.find((c) => c.spec.names.kind === kind);
  if (crd === undefined) throw new Error(`no CRD for ${kind}`);
  return crd;
};
const version = (kind: string) => {
  const v = byKind(kind).spec.versions[0];
  if (v === undefined) throw new Error(`${kind} has no version`);
  return v;
};
const schemaAt = (schema: JSONSchemaProps, path: string): JSONSchemaProps | undefined =>
  path.split(".").reduce<JSONSchemaProps | undefined>((s, key) => s?.properties?.[key], schema);

describe("customResourceDefinitions", () => {
  it("keeps v1.8's CRD names, group and scope so installations migrate in place", () => {
    expect(crds.map((c) => c.metadata.name)).toEqual([
      "azureidentities.aadpodidentity.k8s.io",
      "azureidentitybindings.aadpodidentity.k8s.io",
      "azureassignedidentities.aadpodidentity.k8s.io",
      "azurepodidentityexceptions.aadpodidentity.k8s.io",
    ]);
    for (const crd of crds) {
      expect(crd.spec.group).toBe("aadpodidentity.k8s.io");
      expect(crd.spec.scope).toBe("Namespaced");
      expect(crd.spec.versions.map((v) => [v.name, v.served, v.storage])).toEqual([["v1", true, true]]);
      expect(RESOURCE_KINDS.map((k) => k.plural)).toContain(crd.spec.names.plural);
    }
  });

  it("carries the api-approved annotation the API server demands for *.k8s.io groups", () => {
    for (const crd of crds) expect(crd.metadata.annotations?.["api-approved.kubernetes.io"]).toMatch(/^unapproved/);
  });

  it("passes kubernetes-models' validation and is assignable to its type", () => {
    for (const crd of crds) {
      const typed: ICustomResourceDefinition = crd;
      expect(() => new CrdModel(typed).validate()).not.toThrow();
    }
  });

  it("fails kubernetes-models' validation when broken (the check above can fail)", () => {
    const broken = structuredClone(crds[0]) as unknown as { spec: { scope: unknown } };
    broken.spec.scope = 42;
    expect(() => new CrdModel(broken as unknown as ICustomResourceDefinition).validate()).toThrow();
  });

  it("has structural schemas", () => {
    for (const crd of crds) {
      const schema = crd.spec.versions[0]?.schema.openAPIV3Schema;
      expect(schema).toBeDefined();
      expect(structuralViolations(schema as JSONSchemaProps)).toEqual([]);
    }
  });

  it("declares every legacy spelling of AzureIdentity's spec, so the API server does not prune it", () => {
    const spec = schemaAt(version("AzureIdentity").schema.openAPIV3Schema, "spec");
    for (const [canonical, legacy] of Object.entries(AZURE_IDENTITY_SPEC_SPELLINGS)) {
      for (const key of [canonical, ...legacy]) expect(Object.keys(spec?.properties ?? {})).toContain(key);
    }
    const password = spec?.properties?.ClientPassword?.properties ?? {};
    expect(Object.keys(password)).toEqual(["name", "Name", "namespace", "Namespace"]);
  });

  it("accepts type as a number or a string", () => {
    const type = schemaAt(version("AzureIdentity").schema.openAPIV3Schema, "spec.type");
    expect(type?.["x-kubernetes-int-or-string"]).toBe(true);
  });

  it("declares the legacy spellings inside AzureAssignedIdentity's embedded references too", () => {
    const spec = schemaAt(version("AzureAssignedIdentity").schema.openAPIV3Schema, "spec");
    for (const key of ["azureIdentityRef", "AzureIdentityRef", "azureidentityref"]) {
      expect(spec?.properties?.[key]?.["x-kubernetes-embedded-resource"]).toBe(true);
      expect(spec?.properties?.[key]?.properties?.spec?.properties?.ClientID).toBeDefined();
    }
    expect(version("AzureAssignedIdentity").schema.openAPIV3Schema.properties?.Status).toBeDefined();
  });

  it("has v1.8's printer columns where it had them, and Pod/Node/State for assignments", () => {
    const columns = (kind: string) => (version(kind).additionalPrinterColumns ?? []).filter((c) => !c.priority).map((c) => `${c.name}=${c.jsonPath}`);
    expect(columns("AzureIdentity")).toEqual(["Type=.spec.type", "ClientID=.spec.clientID", "Age=.metadata.creationTimestamp"]);
    expect(columns("AzureIdentityBinding")).toEqual([
      "AzureIdentity=.spec.azureIdentity",
      "Selector=.spec.selector",
      "Age=.metadata.creationTimestamp",
    ]);
    expect(columns("AzureAssignedIdentity")).toEqual([
      "Pod=.spec.pod",
      "Node=.spec.nodename",
      "State=.status.status",
      "Age=.metadata.creationTimestamp",
    ]);
  });

  it("points every printer column at a declared field", () => {
    for (const crd of crds) {
      const v = crd.spec.versions[0];
      for (const column of v?.additionalPrinterColumns ?? []) {
        if (column.jsonPath.startsWith(".metadata.")) continue;
        const path = column.jsonPath.slice(1).replace(/\.metadata\.name$/, ".metadata");
        expect(schemaAt(v?.schema.openAPIV3Schema as JSONSchemaProps, path), `${crd.metadata.name} ${column.jsonPath}`).toBeDefined();
      }
    }
  });

  it("serves /status for user-owned kinds, but not for AzureAssignedIdentity, which MIC creates already Created", () => {
    expect(crds.map((c) => [c.spec.names.kind, c.spec.versions[0]?.subresources?.status !== undefined])).toEqual([
      ["AzureIdentity", true],
      ["AzureIdentityBinding", true],
      ["AzureAssignedIdentity", false],
      ["AzurePodIdentityException", true],
    ]);
  });

  it("returns fresh objects, so a caller editing one cannot change the next", () => {
    const first = customResourceDefinitions();
    (first[0] as CustomResourceDefinition).spec.group = "changed";
    expect(customResourceDefinitions()[0]?.spec.group).toBe("aadpodidentity.k8s.io");
  });
});
