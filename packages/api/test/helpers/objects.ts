import {
  API_GROUP_VERSION,
  BEHAVIOR_ANNOTATION,
  POD_LABEL,
  type AzureIdentity,
  type AzureIdentityBinding,
  type AzurePodIdentityException,
  type AzureIdentitySpec,
} from "../../src/index";

export const RESOURCE_ID = (name: string, group = "rg"): string =>
  `/subscriptions/00000000-0000-4000-8000-000000000000/resourceGroups/${group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${name}`;

/** A valid type-0 identity unless `spec` overrides it. */
export function identity(
  namespace: string,
  name: string,
  options: { spec?: Partial<AzureIdentitySpec>; namespacedAnnotation?: string } = {},
): AzureIdentity {
  return {
    apiVersion: API_GROUP_VERSION,
    kind: "AzureIdentity",
    metadata: {
      name,
      namespace,
      ...(options.namespacedAnnotation !== undefined && {
        annotations: { [BEHAVIOR_ANNOTATION]: options.namespacedAnnotation },
      }),
    },
    spec: { type: 0, resourceID: RESOURCE_ID(name), clientID: `client-${name}`, ...options.spec },
  };
}

export function binding(namespace: string, name: string, azureIdentity: string, selector: string): AzureIdentityBinding {
  return {
    apiVersion: API_GROUP_VERSION,
    kind: "AzureIdentityBinding",
    metadata: { name, namespace },
    spec: { azureIdentity, selector },
  };
}

export function pod(namespace: string, name: string, selector?: string, labels: Record<string, string> = {}) {
  return {
    metadata: { name, namespace, labels: { ...labels, ...(selector !== undefined && { [POD_LABEL]: selector }) } },
  };
}

export function exception(namespace: string, name: string, podLabels: Record<string, string>): AzurePodIdentityException {
  return {
    apiVersion: API_GROUP_VERSION,
    kind: "AzurePodIdentityException",
    metadata: { name, namespace },
    spec: { podLabels },
  };
}
