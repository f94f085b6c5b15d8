import { canonicalResourceId } from "@podidentity/api";

/** ARM error codes whose message names the identities that could not be assigned (v1.8 retried only these). */
export const IDENTITY_ERROR_CODES = ["FailedIdentityOperation", "LinkedAuthorizationFailed"] as const;

// A user-assigned identity resource ID inside an error message: up to the next quote, comma or whitespace.
const IDENTITY_ID = /\/subscriptions\/[^'",\s]+?\/providers\/Microsoft\.ManagedIdentity\/userAssignedIdentities\/[^'",\s/]+/gi;

/**
 * The identity IDs (canonical) an identity error names. Like v1.8, only FailedIdentityOperation and
 * LinkedAuthorizationFailed count; unlike v1.8's quoted-list regex this finds IDs wherever the (nested, JSON in
 * a string) message puts them, and ignores the VM/VMSS resource ID the message also quotes.
 */
export function failedIdentityIds(code: string, message: string): string[] {
  const text = `${code} ${message}`;
  if (!IDENTITY_ERROR_CODES.some((c) => text.includes(c))) return [];
  const found = new Set<string>();
  for (const match of text.matchAll(IDENTITY_ID)) found.add(canonicalResourceId(match[0]));
  return [...found];
}
