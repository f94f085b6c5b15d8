/** The API group and version of the four custom resources, as in aad-pod-identity v1.8. */
export const API_GROUP = "aadpodidentity.k8s.io";
export const API_VERSION = "v1";
export const API_GROUP_VERSION = `${API_GROUP}/${API_VERSION}`;

/** The label a pod carries to opt in: `aadpodidbinding: <selector>`. */
export const POD_LABEL = "aadpodidbinding";

/** Per-identity annotation that makes one AzureIdentity namespaced even when matching is cluster-wide. */
export const BEHAVIOR_ANNOTATION = "aadpodidentity.k8s.io/Behavior";
export const BEHAVIOR_NAMESPACED = "namespaced";

/** v1.8's finalizer on AzureAssignedIdentity objects. */
export const ASSIGNED_IDENTITY_FINALIZER = "azureassignedidentity.finalizers.aadpodidentity.k8s.io";

/** v1.8's label on AzureAssignedIdentity objects naming the node. */
export const NODENAME_LABEL = "nodename";

/**
 * Where AzureAssignedIdentity objects of cluster-wide (not namespaced) identities live. v1.8 put them in
 * `default` whatever the pod's or identity's namespace; we keep that so objects adopted from v1.8 line up.
 */
export const DEFAULT_ASSIGNED_IDENTITY_NAMESPACE = "default";

/** The namespace kubectl (and so every user) means when a manifest names none. */
export const DEFAULT_NAMESPACE = "default";
