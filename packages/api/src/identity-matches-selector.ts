import type { AzureIdentity } from "./azure-identity";
import { canonicalResourceId } from "./identity-resource-id";

/** What a token request may name, from IMDS's `client_id`, `msi_res_id`/`mi_res_id` and `object_id`. */
export interface IdentitySelector {
  clientId?: string | undefined;
  resourceId?: string | undefined;
  objectId?: string | undefined;
}

export interface IdentityMatchOptions {
  /**
   * The identity's object (principal) ID, when the caller knows it. AzureIdentity has no such field, so NMI
   * learns it elsewhere (e.g. the `oid` claim of a token it fetched); without it an `objectId` never matches.
   */
  objectIdOf?: (identity: AzureIdentity) => string | undefined;
}

function present(value: string | undefined): value is string {
  return value !== undefined && value.trim() !== "";
}

function sameId(a: string | undefined, b: string): boolean {
  return a !== undefined && a.trim().toLowerCase() === b.trim().toLowerCase();
}

/** Whether the selector names no identity at all (then the pod's default identity is meant). */
export function isEmptySelector(selector: IdentitySelector): boolean {
  return !present(selector.clientId) && !present(selector.resourceId) && !present(selector.objectId);
}

/**
 * Whether `identity` is the one a token request asks for. Every given field must match; none given matches
 * anything. GUIDs and resource IDs compare ignoring case and blanks: v1.8 waited case-insensitively but then
 * picked case-sensitively, so a client ID typed in upper case waited 100 s and failed — we fix that.
 */
export function identityMatchesSelector(
  identity: AzureIdentity,
  selector: IdentitySelector,
  options: IdentityMatchOptions = {},
): boolean {
  if (present(selector.clientId) && !sameId(identity.spec.clientID, selector.clientId)) return false;
  if (present(selector.resourceId)) {
    const own = identity.spec.resourceID;
    if (own === undefined || canonicalResourceId(own) !== canonicalResourceId(selector.resourceId)) return false;
  }
  if (present(selector.objectId) && !sameId(options.objectIdOf?.(identity), selector.objectId)) return false;
  return true;
}
