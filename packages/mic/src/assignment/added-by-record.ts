import { ASSIGNED_IDENTITY_STATE } from "@podidentity/api";
import { ADDED_BY_ANNOTATION, type AssignedIdentityIndex, type IndexedAssignment } from "../state/assigned-identity-index";
import type { AssignedIdentityWriter } from "../state/assigned-identity-writer";

/**
 * The write-ahead record "MIC added this identity to this VM/VMSS" (`mic.podidentity.io/added-by: mic` on one
 * AzureAssignedIdentity per VM/VMSS and identity). The engine's planner writes it before the PATCH that adds the
 * identity, so a crash mid-PATCH cannot lose it; the reconciler reads it to decide whether an identity may be
 * removed, and hands it to a sibling before deleting the object that carries it. Both use this module; neither
 * calls the other.
 */
export class AddedByRecord {
  readonly #index: AssignedIdentityIndex;
  readonly #writer: AssignedIdentityWriter;

  constructor(index: AssignedIdentityIndex, writer: AssignedIdentityWriter) {
    this.#index = index;
    this.#writer = writer;
  }

  /** Whether an object records that MIC added `resourceId` on `target`. */
  addedByMic(target: string, resourceId: string): boolean {
    return this.#index.addedByMic(target, resourceId);
  }

  /** Write-ahead: mark one object per identity "added by MIC" before the PATCH that adds it. */
  async recordAdding(target: string, resourceIds: readonly string[]): Promise<void> {
    const index = this.#index;
    await Promise.all(
      resourceIds.map(async (id) => {
        if (index.addedByMic(target, id)) return;
        const holder = [...index.keysFor(target, id)].map((k) => index.get(k)!).find((s) => !s.terminating);
        if (!holder) throw new Error(`no AzureAssignedIdentity records ${id} on ${target}; not adding it`);
        await this.#writer.patch(holder, { metadata: { annotations: { [ADDED_BY_ANNOTATION]: "mic" } } });
      }),
    );
  }

  /**
   * `leaving` is about to be deleted while other pods on its VM/VMSS still need its identity: if it carries the
   * record and no sibling does, the record moves to the siblings that stay. False when there is none yet (wait).
   */
  async handOver(leaving: IndexedAssignment, target: string, resourceId: string): Promise<boolean> {
    if (!isAddedByMicRecord(leaving)) return true;
    const siblings = [...this.#index.keysFor(target, resourceId)].map((k) => this.#index.get(k)!).filter((s) => s.key !== leaving.key);
    if (siblings.some(isAddedByMicRecord)) return true;
    const heirs = siblings.filter((s) => !s.terminating);
    if (heirs.length === 0) return false;
    await Promise.all(heirs.map((s) => this.#writer.patch(s, { metadata: { annotations: { [ADDED_BY_ANNOTATION]: "mic" } } })));
    return true;
  }
}

/** Whether this object is evidence that MIC added its identity (v1.8's objects count once Assigned). */
export function isAddedByMicRecord(item: IndexedAssignment): boolean {
  return item.addedBy === "mic" || (item.addedBy === "legacy" && item.state !== undefined && item.state !== ASSIGNED_IDENTITY_STATE.Created);
}
