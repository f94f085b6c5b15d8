import type { AzureIdentityBinding } from "./azure-identity-binding";
import { POD_LABEL } from "./names";
import type { PodLike } from "./object-meta";

/** The pod's `aadpodidbinding` label, or undefined when it has none (or an empty one). */
export function podSelector(pod: PodLike): string | undefined {
  const value = pod.metadata?.labels?.[POD_LABEL];
  return value === undefined || value === "" ? undefined : value;
}

/**
 * Whether a binding's selector picks the pod: the pod's `aadpodidbinding` label equals `spec.selector` exactly
 * (case-sensitive, as Kubernetes label values and v1.8 are). Namespaces are not considered here; see
 * IdentityCatalog.match for the namespace rules. An empty selector selects nothing.
 */
export function bindingSelectsPod(binding: Pick<AzureIdentityBinding, "spec">, pod: PodLike): boolean {
  const selector = binding.spec.selector;
  return selector !== undefined && selector !== "" && podSelector(pod) === selector;
}
