/** Azure refuses more user-assigned identity entries than this in one request (AAD#813). */
export const MAX_IDENTITIES_PER_REQUEST = 150;

export type IdentityDeltaValue = Record<string, never> | null;

/** One PATCH body's `identity`. */
export interface IdentityPatch {
  type: string;
  userAssignedIdentities?: Record<string, IdentityDeltaValue>;
}

export interface IdentityDelta {
  /** Canonical IDs to add (`{}`). */
  add: readonly string[];
  /** Canonical IDs to remove (`null`). */
  remove: readonly string[];
  /**
   * IDs held with stale client IDs (the identity was deleted and re-created in Azure): removed in their own
   * PATCH first, then added back, since one JSON object cannot carry both `null` and `{}` for a key.
   */
  readd?: readonly string[];
}

/**
 * v1.8's type transitions: with user identities left, keep a system identity if there was one
 * (`SystemAssigned, UserAssigned`) else `UserAssigned`; with none left, `SystemAssigned` or `None`.
 */
export function nextIdentityType(currentType: string | undefined, userIdentitiesAfter: number): string {
  const hasSystem = /systemassigned/i.test(currentType ?? "");
  if (userIdentitiesAfter === 0) return hasSystem ? "SystemAssigned" : "None";
  return hasSystem ? "SystemAssigned, UserAssigned" : "UserAssigned";
}

/**
 * The PATCH bodies that apply `delta` to a VM/VMSS currently holding `present` (canonical IDs) with
 * `currentType`: delta entries only (unchanged IDs omitted), at most `maxPerRequest` entries each, adds before
 * removes so the set never passes through empty needlessly, each body's type computed for the state it
 * leaves. Empty delta → no bodies (no PATCH at all).
 */
export function planIdentityPatches(
  present: ReadonlySet<string>,
  currentType: string | undefined,
  delta: IdentityDelta,
  maxPerRequest = MAX_IDENTITIES_PER_REQUEST,
): IdentityPatch[] {
  const state = new Set(present);
  let type = currentType;
  const patches: IdentityPatch[] = [];
  const emit = (entries: Array<[string, IdentityDeltaValue]>): void => {
    for (let i = 0; i < entries.length; i += maxPerRequest) {
      const chunk = entries.slice(i, i + maxPerRequest);
      for (const [id, value] of chunk) {
        if (value === null) state.delete(id);
        else state.add(id);
      }
      const nextType = nextIdentityType(type, state.size);
      // With no user identity left the type alone removes them all; listing nulls next to "None" is refused.
      patches.push(state.size === 0 ? { type: nextType } : { type: nextType, userAssignedIdentities: Object.fromEntries(chunk) });
      type = nextType;
    }
  };
  const readd = [...new Set(delta.readd ?? [])].filter((id) => present.has(id));
  if (readd.length > 0) {
    // Remove-then-add; when they were the only user identities the state is briefly empty ("None", or
    // "SystemAssigned" which keeps the system identity and its principal ID).
    emit(readd.map((id) => [id, null]));
  }
  const adds = [...new Set([...delta.add, ...readd])].filter((id) => !state.has(id));
  const removes = [...new Set(delta.remove)].filter((id) => state.has(id) && !adds.includes(id));
  emit([...adds.map((id): [string, IdentityDeltaValue] => [id, {}]), ...removes.map((id): [string, IdentityDeltaValue] => [id, null])]);
  return patches;
}
