import type { AzurePodIdentityException } from "./azure-pod-identity-exception";
import { namespaceOf, type PodLike } from "./object-meta";

/**
 * The first exception that exempts the pod, if any, by v1.8's rule: an exception only covers pods in its own
 * namespace, and any single one of its `podLabels` present on the pod with a value equal ignoring case is
 * enough (it is not a label selector: the labels are alternatives, not all required).
 */
export function findPodException<T extends Pick<AzurePodIdentityException, "metadata" | "spec">>(
  pod: PodLike,
  exceptions: Iterable<T>,
): T | undefined {
  const podLabels = pod.metadata?.labels ?? {};
  const podNamespace = namespaceOf(pod);
  for (const exception of exceptions) {
    if (namespaceOf(exception) !== podNamespace) continue;
    for (const [key, value] of Object.entries(exception.spec.podLabels ?? {})) {
      const actual = podLabels[key];
      if (actual !== undefined && actual.toLowerCase() === value.toLowerCase()) return exception;
    }
  }
  return undefined;
}

/** Whether NMI should pass the pod's requests to IMDS untouched (see findPodException for the rule). */
export function podMatchesException(
  pod: PodLike,
  exceptions: Iterable<Pick<AzurePodIdentityException, "metadata" | "spec">>,
): boolean {
  return findPodException(pod, exceptions) !== undefined;
}
