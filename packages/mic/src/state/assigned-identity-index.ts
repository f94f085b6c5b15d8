import {
  ASSIGNED_IDENTITY_STATE,
  assignedIdentityState,
  nameOf,
  namespaceOf,
  type AssignedIdentityState,
  type AzureAssignedIdentity,
} from "@podidentity/api";
import { parseComputeTarget, type ComputeTarget } from "../arm/compute-target";
import { identityFacts, objectKeyOf } from "./identity-facts";
import { InternPool } from "./intern-pool";
import { addToSetMap, removeFromSetMap } from "./set-map";

/**
 * Who put the identity on the VM/VMSS, recorded on the AzureAssignedIdentity so it survives restarts and leader
 * changes: `mic` (MIC's PATCH added it — written *before* the PATCH is sent), `pre-existing` (it was there
 * already), `pending` (not known yet). Objects without the annotation were created by aad-pod-identity v1.8
 * and count as MIC-added once Assigned, as v1.8 would have removed them.
 */
export const ADDED_BY_ANNOTATION = "mic.podidentity.io/added-by";
/** The VM/VMSS resource ID the assignment lives on, so it can be released after its node is gone. */
export const COMPUTE_RESOURCE_ANNOTATION = "mic.podidentity.io/compute-resource";
/** Hash of what the object was made from (identity and binding specs, pod, node): equal means current. */
export const FINGERPRINT_ANNOTATION = "mic.podidentity.io/fingerprint";
export type AddedBy = "mic" | "pre-existing" | "pending" | "legacy";

export interface IndexedAssignment {
  readonly key: string;
  readonly object: AzureAssignedIdentity;
  readonly state: AssignedIdentityState | undefined;
  readonly target: ComputeTarget | undefined;
  readonly resourceId: string | undefined;
  readonly clientId: string;
  readonly identityType: number;
  readonly addedBy: AddedBy;
  readonly terminating: boolean;
  readonly fingerprint: string | undefined;
  readonly identityKey: string | undefined;
  readonly bindingKey: string | undefined;
}

/** Distinct VM/VMSS resource IDs the index keeps one ComputeTarget for (a cluster has a few). */
const TARGET_POOL_SIZE = 4096;

/**
 * The AzureAssignedIdentity objects that exist, indexed by VM/VMSS and identity, with who added each identity.
 * `nodeTarget` resolves v1.8 objects (which carry no compute-resource annotation) through their node.
 */
export class AssignedIdentityIndex {
  readonly #items = new Map<string, IndexedAssignment>();
  /** target key → resource ID → keys. */
  readonly #byTarget = new Map<string, Map<string, Set<string>>>();
  readonly #assignedByIdentity = new Map<string, Set<string>>();
  readonly #assignedByBinding = new Map<string, Set<string>>();
  readonly #nodeTarget: (nodeName: string) => ComputeTarget | undefined;
  /** One ComputeTarget per VM/VMSS annotation value, shared by every object on it. */
  readonly #targets = new InternPool<ComputeTarget | undefined>(TARGET_POOL_SIZE);
  readonly #parseTarget = (resourceId: string): ComputeTarget | undefined => this.#targets.intern(resourceId, () => parseComputeTarget(resourceId));

  constructor(nodeTarget: (nodeName: string) => ComputeTarget | undefined) {
    this.#nodeTarget = nodeTarget;
  }

  get size(): number {
    return this.#items.size;
  }

  get(key: string): IndexedAssignment | undefined {
    return this.#items.get(key);
  }

  keys(): IterableIterator<string> {
    return this.#items.keys();
  }

  values(): IterableIterator<IndexedAssignment> {
    return this.#items.values();
  }

  /** Indexes an object as the informer's projection made it (normalised once there, kept as it is here). */
  upsert(object: AzureAssignedIdentity): IndexedAssignment {
    const item = indexAssignment(object, this.#nodeTarget, this.#parseTarget);
    this.delete(item.key);
    this.#items.set(item.key, item);
    if (item.target && item.resourceId) {
      let byId = this.#byTarget.get(item.target.key);
      if (!byId) this.#byTarget.set(item.target.key, (byId = new Map()));
      addToSetMap(byId, item.resourceId, item.key);
    }
    if (item.state === ASSIGNED_IDENTITY_STATE.Assigned && !item.terminating) {
      if (item.identityKey) addToSetMap(this.#assignedByIdentity, item.identityKey, item.key);
      if (item.bindingKey) addToSetMap(this.#assignedByBinding, item.bindingKey, item.key);
    }
    return item;
  }

  delete(key: string): IndexedAssignment | undefined {
    const item = this.#items.get(key);
    if (!item) return undefined;
    this.#items.delete(key);
    if (item.target && item.resourceId) {
      const byId = this.#byTarget.get(item.target.key);
      if (byId) {
        removeFromSetMap(byId, item.resourceId, key);
        if (byId.size === 0) this.#byTarget.delete(item.target.key);
      }
    }
    if (item.identityKey) removeFromSetMap(this.#assignedByIdentity, item.identityKey, key);
    if (item.bindingKey) removeFromSetMap(this.#assignedByBinding, item.bindingKey, key);
    return item;
  }

  /** Keys of objects recording `resourceId` on `target`. */
  keysFor(target: string, resourceId: string): ReadonlySet<string> {
    return this.#byTarget.get(target)?.get(resourceId) ?? new Set();
  }

  /** Every identity some object records on `target`. */
  identitiesOn(target: string): ReadonlyMap<string, ReadonlySet<string>> {
    return this.#byTarget.get(target) ?? new Map();
  }

  targets(): IterableIterator<string> {
    return this.#byTarget.keys();
  }

  /** Whether MIC's own PATCH put `resourceId` on `target` (some object says so). */
  addedByMic(target: string, resourceId: string): boolean {
    for (const key of this.keysFor(target, resourceId)) {
      const item = this.#items.get(key)!;
      if (item.addedBy === "mic") return true;
      // v1.8's objects: once Assigned (or later Unassigned) v1.8 would have removed the identity itself.
      if (item.addedBy === "legacy" && item.state !== undefined && item.state !== ASSIGNED_IDENTITY_STATE.Created) return true;
    }
    return false;
  }

  assignedCountForIdentity(identityKey: string): number {
    return this.#assignedByIdentity.get(identityKey)?.size ?? 0;
  }

  assignedCountForBinding(bindingKey: string): number {
    return this.#assignedByBinding.get(bindingKey)?.size ?? 0;
  }
}

function indexAssignment(
  object: AzureAssignedIdentity,
  nodeTarget: (nodeName: string) => ComputeTarget | undefined,
  parseTarget: (resourceId: string) => ComputeTarget | undefined,
): IndexedAssignment {
  const annotations = object.metadata.annotations ?? {};
  const identity = object.spec.azureIdentityRef;
  const facts = identity ? identityFacts(identity) : undefined;
  const annotated = annotations[COMPUTE_RESOURCE_ANNOTATION];
  const target = annotated ? parseTarget(annotated) : object.spec.nodename ? nodeTarget(object.spec.nodename) : undefined;
  const addedByRaw = annotations[ADDED_BY_ANNOTATION];
  const addedBy: AddedBy = addedByRaw === "mic" || addedByRaw === "pre-existing" || addedByRaw === "pending" ? addedByRaw : "legacy";
  const binding = object.spec.azureBindingRef;
  return {
    key: `${namespaceOf(object)}/${nameOf(object)}`,
    object,
    state: assignedIdentityState(object),
    target,
    resourceId: facts?.resourceId,
    clientId: facts?.clientId ?? "",
    identityType: facts?.type ?? -1,
    addedBy,
    terminating: object.metadata.deletionTimestamp !== undefined,
    fingerprint: annotations[FINGERPRINT_ANNOTATION],
    // The embedded refs carry the objects' names, as in v1.8 (the API server keeps an embedded resource's metadata).
    identityKey: identity && nameOf(identity) ? objectKeyOf(identity) : undefined,
    bindingKey: binding && nameOf(binding) ? objectKeyOf(binding) : undefined,
  };
}
