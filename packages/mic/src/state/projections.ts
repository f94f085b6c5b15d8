import { POD_LABEL, normalizeAzureAssignedIdentity, type AzureAssignedIdentity, type AzureIdentity, type AzureIdentityBinding } from "@podidentity/api";
import type { KubeObject } from "@podidentity/kube";
import { ADDED_BY_ANNOTATION, COMPUTE_RESOURCE_ANNOTATION } from "./assigned-identity-index";
import type { NodeObject, PodObject } from "./desired-state";
import { InternPool, deepFreeze } from "./intern-pool";

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

/** Distinct values each of the AzureAssignedIdentity projection's pools holds before it starts over. */
const POOL_SIZE = 4096;

/**
 * What MIC's AzureAssignedIdentity informer keeps of each object: the object normalised (@podidentity/api's reader:
 * v1.8's and pre-1.6 spellings understood), without `metadata.managedFields` (on it and on the AzureIdentity and
 * binding it embeds), and with the parts that repeat across objects shared.
 *
 * MIC holds one per pod and identity, and the informer's store and the AssignedIdentityIndex share this one object,
 * read once per received version. Field ownership is most of what the API server returns for each (three managers
 * write them: MIC's create, its status writes and its finalizer patches); nothing in MIC reads it, and an update
 * that omits it leaves the server's record as it is. What repeats — the embedded AzureIdentity and binding (the same
 * for every pod of a binding), the VM/VMSS resource ID, the node name, the finalizer — is interned: one frozen
 * instance per distinct value, shared by every object that has it (the reconciler's update clones before editing).
 */
export function assignedIdentityProjection(): (object: KubeObject) => AzureAssignedIdentity {
  const embedded = new InternPool<AzureIdentity | AzureIdentityBinding>(POOL_SIZE);
  const lists = new InternPool<Readonly<Record<string, string>> | readonly string[]>(POOL_SIZE);
  const strings = new InternPool<string>(POOL_SIZE);
  const share = <T extends AzureIdentity | AzureIdentityBinding>(object: T | undefined): T | undefined =>
    object && (embedded.intern(JSON.stringify(object), () => deepFreeze(object)) as T);
  const shareList = <T extends Record<string, string> | string[]>(value: T | undefined): T | undefined =>
    value && (lists.intern(JSON.stringify(value), () => deepFreeze(value)) as T);
  const shareString = (value: string | undefined): string | undefined => value && strings.intern(value, () => value);
  return (raw) => {
    const object = normalizeAzureAssignedIdentity(withoutManagedFieldsInside(raw)).object;
    const { metadata, spec } = object;
    const annotations = metadata.annotations;
    return {
      ...object,
      metadata: {
        ...metadata,
        ...(metadata.labels && { labels: shareList(metadata.labels) }),
        ...(metadata.finalizers && { finalizers: shareList(metadata.finalizers) }),
        ...(annotations && {
          annotations: {
            ...annotations,
            ...(annotations[COMPUTE_RESOURCE_ANNOTATION] && { [COMPUTE_RESOURCE_ANNOTATION]: shareString(annotations[COMPUTE_RESOURCE_ANNOTATION]) }),
            ...(annotations[ADDED_BY_ANNOTATION] && { [ADDED_BY_ANNOTATION]: shareString(annotations[ADDED_BY_ANNOTATION]) }),
          },
        }),
      },
      spec: {
        ...spec,
        ...(spec.azureIdentityRef && { azureIdentityRef: share(spec.azureIdentityRef) }),
        ...(spec.azureBindingRef && { azureBindingRef: share(spec.azureBindingRef) }),
        ...(spec.podNamespace && { podNamespace: shareString(spec.podNamespace) }),
        ...(spec.nodename && { nodename: shareString(spec.nodename) }),
      },
    };
  };
}

/** The object, and every object its spec embeds, without `metadata.managedFields`. */
function withoutManagedFieldsInside(object: KubeObject): KubeObject {
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
