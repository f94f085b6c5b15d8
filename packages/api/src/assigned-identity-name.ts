import type { AzureIdentity } from "./azure-identity";
import { DEFAULT_ASSIGNED_IDENTITY_NAMESPACE } from "./names";
import { namespaceOf } from "./object-meta";

/**
 * v1.8's AzureAssignedIdentity name: `<pod>-<podNamespace>-<identityName>`. Kept byte for byte so objects
 * created by v1.8 are found and adopted, not duplicated. Like v1.8 it is not truncated: Kubernetes rejects names
 * over 253 characters, which MIC reports as a Warning event on the pod.
 */
export function assignedIdentityName(podName: string, podNamespace: string, identityName: string): string {
  return `${podName}-${podNamespace}-${identityName}`;
}

/**
 * Where the AzureAssignedIdentity lives: the identity's namespace when the identity is namespaced, else
 * `default`, as in v1.8 (so a cluster-wide identity's assignments stay where v1.8 put them).
 */
export function assignedIdentityNamespace(identity: Pick<AzureIdentity, "metadata">, namespaced: boolean): string {
  return namespaced ? namespaceOf(identity) : DEFAULT_ASSIGNED_IDENTITY_NAMESPACE;
}
