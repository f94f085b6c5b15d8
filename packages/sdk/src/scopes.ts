/**
 * Maps the scopes an Azure SDK client asks for to the IMDS `resource` parameter: exactly one scope, with a
 * trailing `/.default` removed (as @azure/identity's ManagedIdentityCredential does).
 *
 * A wrong scope is a programming error, not an environment without an identity: it throws a RangeError (not
 * exactly one scope) or a TypeError (not a non-empty string), never a CredentialUnavailableError, so that a
 * ChainedTokenCredential stops and shows it instead of moving on to its next credential.
 */
export function scopeToResource(scopes: string | readonly string[]): string {
  const list: readonly unknown[] = typeof scopes === "string" ? [scopes] : Array.isArray(scopes) ? scopes : [];
  if (typeof scopes !== "string" && !Array.isArray(scopes)) {
    throw new TypeError(`PodIdentityCredential: scopes must be a string or an array of one string, got ${typeof scopes}.`);
  }
  if (list.length !== 1) {
    throw new RangeError(
      `PodIdentityCredential: exactly one scope is supported, got ${list.length} (${list.map(String).join(", ") || "none"}).`,
    );
  }
  const scope = list[0];
  if (typeof scope !== "string") {
    throw new TypeError(`PodIdentityCredential: the scope must be a string, got ${typeof scope}.`);
  }
  const trimmed = scope.trim();
  const resource = trimmed.endsWith("/.default") ? trimmed.slice(0, -"/.default".length) : trimmed;
  if (resource === "") {
    throw new TypeError(`PodIdentityCredential: the scope is empty; pass a resource such as "https://vault.azure.net/.default".`);
  }
  return resource;
}
