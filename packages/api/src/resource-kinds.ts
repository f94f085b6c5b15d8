/**
 * Kind, list kind and REST names of the four custom resources. The CRD names
 * (`<plural>.aadpodidentity.k8s.io`) are v1.8's, so an installation migrates in place: applying our CRDs over
 * v1.8's updates them rather than creating a second set.
 */
export interface ResourceKindNames {
  readonly kind: string;
  readonly listKind: string;
  readonly plural: string;
  readonly singular: string;
}

export const AZURE_IDENTITY_NAMES = {
  kind: "AzureIdentity",
  listKind: "AzureIdentityList",
  plural: "azureidentities",
  singular: "azureidentity",
} as const satisfies ResourceKindNames;

export const AZURE_IDENTITY_BINDING_NAMES = {
  kind: "AzureIdentityBinding",
  listKind: "AzureIdentityBindingList",
  plural: "azureidentitybindings",
  singular: "azureidentitybinding",
} as const satisfies ResourceKindNames;

export const AZURE_ASSIGNED_IDENTITY_NAMES = {
  kind: "AzureAssignedIdentity",
  listKind: "AzureAssignedIdentityList",
  plural: "azureassignedidentities",
  singular: "azureassignedidentity",
} as const satisfies ResourceKindNames;

export const AZURE_POD_IDENTITY_EXCEPTION_NAMES = {
  kind: "AzurePodIdentityException",
  listKind: "AzurePodIdentityExceptionList",
  plural: "azurepodidentityexceptions",
  singular: "azurepodidentityexception",
} as const satisfies ResourceKindNames;

/** The four kinds in the order the CRD manifest lists them. */
export const RESOURCE_KINDS: readonly ResourceKindNames[] = [
  AZURE_IDENTITY_NAMES,
  AZURE_IDENTITY_BINDING_NAMES,
  AZURE_ASSIGNED_IDENTITY_NAMES,
  AZURE_POD_IDENTITY_EXCEPTION_NAMES,
];
