import { POD_LABEL } from "@podidentity/api";
import type { KubeObject } from "@podidentity/kube";
import type { NodeObject, PodObject } from "./desired-state";

/**
 * What MIC's informers keep of pods and nodes (@podidentity/kube's projection hook). A pod from the API server is
 * 5–20 KB of JSON (managed fields, container specs, conditions) and MIC holds every labelled pod of the cluster and
 * every node; matching, the AzureAssignedIdentity it writes and the Warning events it records on a pod read only
 * these fields (state/desired-state.ts, runtime/problem-reporter.ts, arm/compute-target.ts). The informer compares
 * resourceVersions itself, so the version kept here is only for readers.
 */
export function projectPod(pod: KubeObject & PodObject): PodObject {
  const m = pod.metadata ?? {};
  const selector = m.labels?.[POD_LABEL];
  return {
    metadata: {
      ...(m.name !== undefined && { name: m.name }),
      ...(m.namespace !== undefined && { namespace: m.namespace }),
      ...(m.uid !== undefined && { uid: m.uid }),
      ...(m.resourceVersion !== undefined && { resourceVersion: m.resourceVersion }),
      ...(m.deletionTimestamp !== undefined && { deletionTimestamp: m.deletionTimestamp }),
      // The one label matching reads (podSelector); the informer lists only pods that have it.
      ...(selector !== undefined && { labels: { [POD_LABEL]: selector } }),
    },
    spec: { ...(pod.spec?.nodeName !== undefined && { nodeName: pod.spec.nodeName }) },
    status: { ...(pod.status?.phase !== undefined && { phase: pod.status.phase }) },
  };
}

/**
 * An AzureAssignedIdentity without `metadata.managedFields`, on the object and on the AzureIdentity and binding it
 * embeds: MIC holds one per pod and identity, and field ownership is most of what the API server returns for each
 * (three managers write them: MIC's create, its status writes and its finalizer patches). Nothing in MIC reads it;
 * an update that omits it leaves the server's record as it is. Everything else is kept as received (the index
 * normalises it; updates start from it).
 */
export function projectAssignedIdentity(object: KubeObject): KubeObject {
  const out = withoutManagedFields(object);
  const spec = object.spec;
  if (spec === undefined || spec === null || typeof spec !== "object") return out;
  // Every key, not only azureIdentityRef/azureBindingRef: objects written by pre-1.6 MIC spell them in lowercase.
  let copy: Record<string, unknown> | undefined;
  for (const [key, value] of Object.entries(spec)) {
    const stripped = withoutManagedFields(value);
    if (stripped === value) continue;
    copy ??= { ...spec };
    copy[key] = stripped;
  }
  return copy === undefined ? out : { ...out, spec: copy };
}

/** The object with `metadata.managedFields` left out (the object itself when it has none). */
function withoutManagedFields<T>(value: T): T {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return value;
  const metadata = (value as { metadata?: unknown }).metadata;
  if (metadata === null || typeof metadata !== "object" || !("managedFields" in metadata)) return value;
  const { managedFields: _dropped, ...rest } = metadata as Record<string, unknown>;
  return { ...value, metadata: rest };
}

/** A node's name and providerID: all that resolves its VM or scale set (nodeComputeTarget). */
export function projectNode(node: KubeObject & NodeObject): NodeObject {
  const m = node.metadata ?? {};
  return {
    metadata: {
      ...(m.name !== undefined && { name: m.name }),
      ...(m.resourceVersion !== undefined && { resourceVersion: m.resourceVersion }),
    },
    spec: { ...(node.spec?.providerID !== undefined && { providerID: node.spec.providerID }) },
  };
}
