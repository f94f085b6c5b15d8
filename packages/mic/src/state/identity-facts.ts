import { IDENTITY_TYPE, canonicalResourceId, nameOf, namespaceOf, type AzureIdentity, type AzureIdentityBinding } from "@podidentity/api";

/** What MIC derives from an AzureIdentity to match, index and assign it. */
export interface IdentityFacts {
  /** 0 user-assigned MSI (needs ARM), 1/2 service principal (no ARM). */
  readonly type: number;
  /** Canonical resource ID, type 0 only. */
  readonly resourceId: string | undefined;
  /** Lower-case client ID ("" when none). */
  readonly clientId: string;
}

// Objects are replaced, never mutated, on every informer event, and the AzureIdentities embedded in
// AzureAssignedIdentities are interned (projections.ts): what is derived from them is computed once per object and
// shared by every assignment that holds it.
const facts = new WeakMap<AzureIdentity, IdentityFacts>();
const keys = new WeakMap<AzureIdentity | AzureIdentityBinding, string>();

export function identityFacts(identity: AzureIdentity): IdentityFacts {
  let f = facts.get(identity);
  if (!f) {
    const type = Number(identity.spec.type);
    f = {
      type,
      resourceId: type === IDENTITY_TYPE.UserAssignedMSI && identity.spec.resourceID ? canonicalResourceId(identity.spec.resourceID) : undefined,
      clientId: (identity.spec.clientID ?? "").toLowerCase(),
    };
    facts.set(identity, f);
  }
  return f;
}

/** `<namespace>/<name>` of an AzureIdentity or AzureIdentityBinding. */
export function objectKeyOf(object: AzureIdentity | AzureIdentityBinding): string {
  let key = keys.get(object);
  if (key === undefined) {
    key = `${namespaceOf(object)}/${nameOf(object)}`;
    keys.set(object, key);
  }
  return key;
}
