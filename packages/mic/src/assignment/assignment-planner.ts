import type { AssignedIdentityIndex } from "../state/assigned-identity-index";
import type { AddedByRecord } from "./added-by-record";
import type { AssignmentPlanner } from "./assignment-engine";
import type { DesiredState } from "../state/desired-state";
import { clientIdMismatches, type ClientIdMismatch } from "./drift-repair";

export interface AssignmentPlannerOptions {
  desired: DesiredState;
  index: AssignedIdentityIndex;
  record: AddedByRecord;
  isImmutable(clientId: string | null | undefined): boolean;
  /** Re-run the reconcile of one AzureAssignedIdentity (queue it). */
  wake(key: string): void;
  clientIdMismatch(mismatch: ClientIdMismatch): void;
}

/**
 * What the engine asks each sync, answered from the desired state and the existing objects:
 * - add what pods on the VM/VMSS need, once its AzureAssignedIdentity exists (so "MIC added it" can be recorded
 *   on it first);
 * - remove what no pod there needs, only if an object records that MIC added it and no object's client ID is
 *   immutable.
 */
export function createAssignmentPlanner(o: AssignmentPlannerOptions): AssignmentPlanner {
  const { desired, index } = o;
  return {
    addable: function* (target) {
      for (const [id, keys] of desired.wanted(target)) {
        for (const key of keys) {
          const item = index.get(key);
          if (item && !item.terminating && item.resourceId === id && item.target?.key === target) {
            yield id;
            break;
          }
        }
      }
    },
    removable: (target) => {
      const wanted = desired.wanted(target);
      const out: string[] = [];
      for (const [id, keys] of index.identitiesOn(target)) {
        if (wanted.has(id) || !o.record.addedByMic(target, id)) continue;
        if ([...keys].some((k) => o.isImmutable(index.get(k)?.clientId))) continue;
        out.push(id);
      }
      return out;
    },
    isImmutable: (clientId) => o.isImmutable(clientId),
    recordAdding: (target, ids) => o.record.recordAdding(target, ids),
    synced: (target) => {
      for (const keys of index.identitiesOn(target).values()) for (const key of keys) o.wake(key);
    },
    observed: (target, state) => {
      for (const m of clientIdMismatches(state, desired.wanted(target), (k) => desired.get(k))) o.clientIdMismatch(m);
    },
  };
}
