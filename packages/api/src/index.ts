export {
  API_GROUP,
  API_GROUP_VERSION,
  API_VERSION,
  ASSIGNED_IDENTITY_FINALIZER,
  BEHAVIOR_ANNOTATION,
  BEHAVIOR_NAMESPACED,
  DEFAULT_ASSIGNED_IDENTITY_NAMESPACE,
  DEFAULT_NAMESPACE,
  NODENAME_LABEL,
  POD_LABEL,
} from "./names";
export {
  AZURE_ASSIGNED_IDENTITY_NAMES,
  AZURE_IDENTITY_BINDING_NAMES,
  AZURE_IDENTITY_NAMES,
  AZURE_POD_IDENTITY_EXCEPTION_NAMES,
  RESOURCE_KINDS,
} from "./resource-kinds";
export type { ResourceKindNames } from "./resource-kinds";
export { nameOf, namespaceOf } from "./object-meta";
export type { KubeList, ListMeta, ObjectMeta, OwnerReference, PodLike } from "./object-meta";
export { formatProblems, hasErrors } from "./normalization-problem";
export type { NormalizationProblem, Normalized, ProblemCode, ProblemSeverity } from "./normalization-problem";
export {
  AZURE_ASSIGNED_IDENTITY_SPEC_SPELLINGS,
  AZURE_IDENTITY_BINDING_SPEC_SPELLINGS,
  AZURE_IDENTITY_SPEC_SPELLINGS,
  AZURE_POD_IDENTITY_EXCEPTION_SPEC_SPELLINGS,
  SECRET_REFERENCE_SPELLINGS,
} from "./legacy-keys";
export type { KeySpellings } from "./legacy-keys";
export {
  DEFAULT_AD_ENDPOINT,
  IDENTITY_TYPE,
  normalizeAzureIdentity,
  validateAzureIdentity,
} from "./azure-identity";
export type {
  AzureIdentity,
  AzureIdentityList,
  AzureIdentitySpec,
  AzureIdentityStatus,
  IdentityType,
  SecretReference,
} from "./azure-identity";
export { normalizeAzureIdentityBinding, validateAzureIdentityBinding } from "./azure-identity-binding";
export type {
  AzureIdentityBinding,
  AzureIdentityBindingList,
  AzureIdentityBindingSpec,
  AzureIdentityBindingStatus,
} from "./azure-identity-binding";
export {
  ASSIGNED_IDENTITY_STATE,
  ASSIGNMENT_ERROR_MAX_MESSAGE_LENGTH,
  assignedIdentityState,
  normalizeAzureAssignedIdentity,
  validateAzureAssignedIdentity,
} from "./azure-assigned-identity";
export type {
  AssignedIdentityState,
  AssignmentError,
  AzureAssignedIdentity,
  AzureAssignedIdentityList,
  AzureAssignedIdentitySpec,
  AzureAssignedIdentityStatus,
} from "./azure-assigned-identity";
export {
  normalizeAzurePodIdentityException,
  validateAzurePodIdentityException,
} from "./azure-pod-identity-exception";
export type {
  AzurePodIdentityException,
  AzurePodIdentityExceptionList,
  AzurePodIdentityExceptionSpec,
  AzurePodIdentityExceptionStatus,
} from "./azure-pod-identity-exception";
export {
  canonicalResourceId,
  InvalidResourceIdError,
  isValidIdentityResourceId,
  parseIdentityResourceId,
  tryParseIdentityResourceId,
  V18_RESOURCE_ID_PATTERN,
} from "./identity-resource-id";
export type { IdentityResourceId } from "./identity-resource-id";
export { identityMatchesSelector, isEmptySelector } from "./identity-matches-selector";
export type { IdentityMatchOptions, IdentitySelector } from "./identity-matches-selector";
export { isIdentityNamespaced } from "./is-identity-namespaced";
export { bindingSelectsPod, podSelector } from "./binding-selects-pod";
export { assignedIdentityName, assignedIdentityNamespace } from "./assigned-identity-name";
export { IdentityCatalog, matchPodIdentities } from "./identity-catalog";
export type { MatchOptions, PodIdentityMatch, PodIdentityMatches, SkippedBinding, SkipReason } from "./identity-catalog";
export { findPodException, podMatchesException } from "./pod-matches-exception";
export { CRD_ANNOTATIONS, CRD_LABELS, crdName, customResourceDefinitions } from "./custom-resource-definitions";
export type {
  CustomResourceColumnDefinition,
  CustomResourceDefinition,
  CustomResourceDefinitionNames,
  CustomResourceDefinitionVersion,
  JSONSchemaProps,
} from "./crd-types";
export { RENDER_CRDS_COMMAND, renderCrdsYaml } from "./render-crds-yaml";
