/**
 * User-assigned identity resource IDs.
 *
 * v1.8's MIC skipped a type-0 AzureIdentity whose resourceID failed this pattern (Go regexp, unanchored, `(?i)`).
 * We keep it verbatim as the acceptance rule so that exactly the identities v1.8 assigned are assigned.
 */
export const V18_RESOURCE_ID_PATTERN =
  /\/subscriptions\/.+?\/resourcegroups\/.+?\/providers\/Microsoft.ManagedIdentity\/userAssignedIdentities\/.+/i;

export interface IdentityResourceId {
  readonly subscriptionId: string;
  readonly resourceGroup: string;
  readonly name: string;
}

/** Thrown by parseIdentityResourceId; `code` is stable for callers and logs. */
export class InvalidResourceIdError extends Error {
  readonly code = "INVALID_RESOURCE_ID";
  constructor(
    readonly resourceId: string,
    readonly reason: string,
  ) {
    super(
      `"${resourceId}" is not a user-assigned identity resource ID (${reason}); expected ` +
        `/subscriptions/<subscription>/resourcegroups/<group>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>, ` +
        "as printed by `az identity show --query id -o tsv`",
    );
    this.name = "InvalidResourceIdError";
  }
}

/** Whether v1.8 would have accepted `id` (its regular expression, unanchored). */
export function isValidIdentityResourceId(id: string): boolean {
  return V18_RESOURCE_ID_PATTERN.test(id);
}

// Segment names are case-insensitive in ARM; values are kept as written.
const EXPECTED = ["subscriptions", "resourcegroups", "providers", "userassignedidentities"] as const;

/**
 * Splits a user-assigned identity resource ID into its parts, strictly: exactly the nine path segments ARM
 * uses, no empty or extra segments, no surrounding whitespace. Stricter than v1.8's pattern, which also accepted
 * prefixes and trailing junk; normalisation warns when an ID passes v1.8's pattern but not this.
 */
export function parseIdentityResourceId(id: string): IdentityResourceId {
  if (id === "") throw new InvalidResourceIdError(id, "it is empty");
  if (id.trim() !== id) throw new InvalidResourceIdError(id, "surrounding whitespace");
  const segments = id.split("/");
  if (segments[0] !== "") throw new InvalidResourceIdError(id, "it must start with /subscriptions/");
  if (segments.length !== 9) {
    throw new InvalidResourceIdError(id, `it has ${segments.length - 1} path segments, not 8`);
  }
  const [, subs, subscriptionId, rgs, resourceGroup, providers, namespace, kind, name] = segments as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const names = [subs, rgs, providers, kind].map((s) => s.toLowerCase());
  for (let i = 0; i < EXPECTED.length; i += 1) {
    if (names[i] !== EXPECTED[i]) {
      throw new InvalidResourceIdError(id, `expected the segment "${EXPECTED[i]}", found "${names[i]}"`);
    }
  }
  if (namespace.toLowerCase() !== "microsoft.managedidentity") {
    throw new InvalidResourceIdError(id, `the provider is "${namespace}", not Microsoft.ManagedIdentity`);
  }
  for (const [label, value] of [
    ["subscription", subscriptionId],
    ["resource group", resourceGroup],
    ["name", name],
  ] as const) {
    if (value === "") throw new InvalidResourceIdError(id, `the ${label} is empty`);
  }
  return { subscriptionId, resourceGroup, name };
}

/** parseIdentityResourceId without the throw. */
export function tryParseIdentityResourceId(id: string): IdentityResourceId | undefined {
  try {
    return parseIdentityResourceId(id);
  } catch (error) {
    // Only our own validation error means "not an identity ID"; anything else is a bug and must surface.
    if (error instanceof InvalidResourceIdError) return undefined;
    throw error;
  }
}

/**
 * The form to compare and send resource IDs in. ARM treats them case-insensitively and v1.8 lower-cased them
 * in its PATCH bodies, so two spellings of one identity must be one key.
 */
export function canonicalResourceId(id: string): string {
  return id.trim().toLowerCase();
}
