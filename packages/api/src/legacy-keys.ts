/**
 * The spellings of every field that manifests in the wild use.
 *
 * aad-pod-identity before 1.6 decoded its objects with Go's encoding/json, which matches keys
 * case-insensitively, and its CRDs had no schema, so guides and charts wrote the Go field names
 * (`ResourceID`, `ClientID`, `AzureIdentity`, `Selector`, `ClientPassword: {Name, Namespace}`) or mixed forms
 * (`ClientId`), and pre-1.6 MIC stored its own objects with all-lowercase tags (`azureidentityref`,
 * `podnamespace`) and a top-level `Status`. v1.8's structural schemas declared only the camelCase keys, so
 * the API server pruned all of these and old manifests silently stopped working.
 *
 * Reading (see FieldReader) matches keys case-insensitively, as Go did, so any casing works when an object
 * reaches us unpruned. The API server, though, keeps only keys the CRD schema declares, so the CRD schemas are
 * generated from these tables: every spelling listed here survives `kubectl apply`.
 */
export type KeySpellings = Readonly<Record<string, readonly string[]>>;

/** `ID` suffixed fields: the Go field name, the `Id` variants charts use, and the pre-1.6 lowercase tag. */
function idSpellings(camel: string): readonly string[] {
  const pascal = camel.charAt(0).toUpperCase() + camel.slice(1);
  return [pascal, camel.replace(/ID(s?)$/, "Id$1"), pascal.replace(/ID(s?)$/, "Id$1"), camel.toLowerCase()];
}

export const AZURE_IDENTITY_SPEC_SPELLINGS: KeySpellings = {
  type: ["Type"],
  resourceID: idSpellings("resourceID"),
  clientID: idSpellings("clientID"),
  clientPassword: ["ClientPassword", "clientpassword"],
  tenantID: idSpellings("tenantID"),
  auxiliaryTenantIDs: idSpellings("auxiliaryTenantIDs"),
  adResourceID: ["ADResourceID", "ADResourceId", "adResourceId", "adresourceid"],
  adEndpoint: ["ADEndpoint", "AdEndpoint", "adendpoint"],
  replicas: ["Replicas"],
};

/** core/v1 SecretReference; v1.8's own docs show `{"Name": …, "Namespace": …}` for type 2. */
export const SECRET_REFERENCE_SPELLINGS: KeySpellings = {
  name: ["Name"],
  namespace: ["Namespace"],
};

export const AZURE_IDENTITY_BINDING_SPEC_SPELLINGS: KeySpellings = {
  azureIdentity: ["AzureIdentity", "azureidentity"],
  selector: ["Selector"],
  weight: ["Weight"],
};

export const AZURE_ASSIGNED_IDENTITY_SPEC_SPELLINGS: KeySpellings = {
  azureIdentityRef: ["AzureIdentityRef", "azureidentityref"],
  azureBindingRef: ["AzureBindingRef", "azurebindingref"],
  pod: ["Pod"],
  podNamespace: ["PodNamespace", "podnamespace"],
  nodename: ["NodeName", "nodeName"],
  replicas: ["Replicas"],
};

export const AZURE_POD_IDENTITY_EXCEPTION_SPEC_SPELLINGS: KeySpellings = {
  podLabels: ["PodLabels", "podlabels"],
};

export const REPLICA_STATUS_SPELLINGS: KeySpellings = {
  availableReplicas: ["AvailableReplicas"],
};

export const AZURE_ASSIGNED_IDENTITY_STATUS_SPELLINGS: KeySpellings = {
  status: ["Status"],
  availableReplicas: ["AvailableReplicas"],
};

export const AZURE_POD_IDENTITY_EXCEPTION_STATUS_SPELLINGS: KeySpellings = {
  status: ["Status"],
};

/** Top-level keys: pre-1.6 AzureAssignedIdentity and AzurePodIdentityException were stored with `Status`. */
export const STATUS_ROOT_SPELLINGS: KeySpellings = {
  spec: [],
  status: ["Status"],
};

/** Every spelling of a field, canonical first. */
export function spellingsOf(table: KeySpellings, canonical: string): readonly string[] {
  return [canonical, ...(table[canonical] ?? [])];
}
