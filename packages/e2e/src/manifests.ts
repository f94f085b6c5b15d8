/**
 * The YAML users apply, written the way the aad-pod-identity guides write it: an AzureIdentity with the
 * capitalised keys of pre-1.6 releases (`ResourceID`, `ClientID`), a binding with `AzureIdentity` and `Selector`.
 * The harness applies this text as it is (parsed, then POSTed as `kubectl create -f` would), so the legacy
 * spellings travel through the API server's schema to MIC and NMI.
 */
import { parseAllDocuments } from "yaml";
import type { KubeObject } from "@podidentity/kube";

/** Any object of a manifest, as plain JSON. */
export type KubeObjectLike = KubeObject;

export interface IdentityManifestInput {
  /** AzureIdentity name (also the binding's `AzureIdentity`). */
  name: string;
  namespace: string;
  resourceId: string;
  clientId: string;
  /** The pods' `aadpodidbinding` label value. */
  selector: string;
  /** Write the legacy capitalised keys (default) or v1.8's camelCase ones. */
  legacyKeys?: boolean;
}

export function identityManifest(m: IdentityManifestInput): string {
  const legacy = m.legacyKeys ?? true;
  return [
    "apiVersion: aadpodidentity.k8s.io/v1",
    "kind: AzureIdentity",
    "metadata:",
    `  name: ${m.name}`,
    `  namespace: ${m.namespace}`,
    "spec:",
    "  type: 0",
    `  ${legacy ? "ResourceID" : "resourceID"}: ${m.resourceId}`,
    `  ${legacy ? "ClientID" : "clientID"}: ${m.clientId}`,
    "---",
    "apiVersion: aadpodidentity.k8s.io/v1",
    "kind: AzureIdentityBinding",
    "metadata:",
    `  name: ${m.name}-binding`,
    `  namespace: ${m.namespace}`,
    "spec:",
    `  ${legacy ? "AzureIdentity" : "azureIdentity"}: ${m.name}`,
    `  ${legacy ? "Selector" : "selector"}: ${m.selector}`,
    "",
  ].join("\n");
}

/** An AzurePodIdentityException: pods of `namespace` with one of these labels go straight to IMDS. */
export function exceptionManifest(name: string, namespace: string, podLabels: Record<string, string>): string {
  return [
    "apiVersion: aadpodidentity.k8s.io/v1",
    "kind: AzurePodIdentityException",
    "metadata:",
    `  name: ${name}`,
    `  namespace: ${namespace}`,
    "spec:",
    "  podLabels:",
    ...Object.entries(podLabels).map(([k, v]) => `    ${k}: ${v}`),
    "",
  ].join("\n");
}

const COLLECTIONS: Record<string, (ns: string) => string> = {
  AzureIdentity: (ns) => `/apis/aadpodidentity.k8s.io/v1/namespaces/${ns}/azureidentities`,
  AzureIdentityBinding: (ns) => `/apis/aadpodidentity.k8s.io/v1/namespaces/${ns}/azureidentitybindings`,
  AzurePodIdentityException: (ns) => `/apis/aadpodidentity.k8s.io/v1/namespaces/${ns}/azurepodidentityexceptions`,
  AzureAssignedIdentity: (ns) => `/apis/aadpodidentity.k8s.io/v1/namespaces/${ns}/azureassignedidentities`,
  Namespace: () => "/api/v1/namespaces",
  Secret: (ns) => `/api/v1/namespaces/${ns}/secrets`,
  CustomResourceDefinition: () => "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
};

/** The REST collection an object is created in (the kinds the e2e suite applies). */
export function collectionPathOf(object: KubeObjectLike, defaultNamespace = "default"): string {
  const kind = object.kind ?? "";
  const path = COLLECTIONS[kind];
  if (!path) throw new Error(`collectionPathOf: the e2e harness does not apply kind "${kind}" (known: ${Object.keys(COLLECTIONS).join(", ")})`);
  return path(object.metadata?.namespace ?? defaultNamespace);
}

/** The path of one object (for GET/PATCH/DELETE). */
export function objectPathOf(object: KubeObjectLike, defaultNamespace = "default"): string {
  return `${collectionPathOf(object, defaultNamespace)}/${object.metadata?.name ?? ""}`;
}

export function parseManifest(text: string): KubeObjectLike[] {
  return parseAllDocuments(text).flatMap((doc) => {
    if (doc.errors.length > 0) throw new Error(`manifest YAML: ${doc.errors[0]!.message}`);
    const value = doc.toJS() as KubeObjectLike | null;
    return value ? [value] : [];
  });
}
