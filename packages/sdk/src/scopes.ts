import { PodIdentityUnavailableError } from "./errors";

/**
 * Maps the scopes an Azure SDK client asks for to the IMDS `resource` parameter: exactly one scope,
 * with a trailing `/.default` removed (as @azure/identity's ManagedIdentityCredential does).
 */
export function scopeToResource(scopes: string | readonly string[]): string {
  const list = typeof scopes === "string" ? [scopes] : scopes;
  if (list.length !== 1) {
    throw new PodIdentityUnavailableError(
      "INVALID_SCOPE",
      `PodIdentityCredential: exactly one scope is supported, got ${list.length} (${list.join(", ") || "none"}).`,
    );
  }
  const scope = list[0]!.trim();
  const resource = scope.endsWith("/.default") ? scope.slice(0, -"/.default".length) : scope;
  if (resource === "") {
    throw new PodIdentityUnavailableError(
      "INVALID_SCOPE",
      `PodIdentityCredential: the scope is empty; pass a resource such as "https://vault.azure.net/.default".`,
    );
  }
  return resource;
}
