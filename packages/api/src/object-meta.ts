import { DEFAULT_NAMESPACE } from "./names";

/**
 * The subset of Kubernetes ObjectMeta this project reads or writes. Objects from the API server carry more;
 * normalisation copies metadata through untouched, so unknown fields survive a read-modify-write.
 */
export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
  [key: string]: unknown;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ListMeta {
  resourceVersion?: string;
  continue?: string;
  remainingItemCount?: number;
}

/** A list as the API server returns it (`GET .../azureidentities`). */
export interface KubeList<T> {
  apiVersion: string;
  kind: string;
  metadata: ListMeta;
  items: T[];
}

/**
 * The least of a pod the matching rules look at. A full `V1Pod` from @kubernetes/client-node satisfies it, so
 * MIC and NMI pass their informer objects straight in.
 */
export interface PodLike {
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> | undefined } | undefined;
}

/** An object's namespace, or `default` when a manifest named none (as kubectl assumes). */
export function namespaceOf(object: { metadata?: { namespace?: string | undefined } | undefined }): string {
  const ns = object.metadata?.namespace;
  return ns === undefined || ns === "" ? DEFAULT_NAMESPACE : ns;
}

/** An object's name, or the empty string when it has none yet. */
export function nameOf(object: { metadata?: { name?: string | undefined } | undefined }): string {
  return object.metadata?.name ?? "";
}
