/**
 * Resources (token audiences) the emulated tenant knows. Entra and IMDS refuse tokens for anything
 * else (AADSTS500011), so a typo in a resource fails in tests as it would in Azure.
 */
export const DEFAULT_KNOWN_RESOURCES: readonly string[] = [
  "https://management.azure.com",
  "https://management.core.windows.net",
  "https://vault.azure.net",
  "https://storage.azure.com",
  "https://database.windows.net",
  "https://graph.microsoft.com",
  "https://ossrdbms-aad.database.windows.net",
  "https://servicebus.azure.net",
  "https://eventhubs.azure.net",
  "https://cognitiveservices.azure.com",
];

const STORAGE_ACCOUNT = /^https:\/\/[a-z0-9]{3,24}\.(blob|queue|table|dfs|file)\.core\.windows\.net$/;

/** Normalises a resource for comparison: lower-case, no trailing slash. */
export function normalizeResource(resource: string): string {
  return resource.trim().replace(/\/+$/, "").toLowerCase();
}

export class KnownResources {
  readonly #resources = new Set<string>();

  constructor(resources: readonly string[] = DEFAULT_KNOWN_RESOURCES) {
    for (const r of resources) this.add(r);
  }

  add(resource: string): void {
    this.#resources.add(normalizeResource(resource));
  }

  /** True for a listed resource, a storage account endpoint, or an application ID given by `isAppId`. */
  has(resource: string, isAppId: (id: string) => boolean = () => false): boolean {
    const normalized = normalizeResource(resource);
    return this.#resources.has(normalized) || STORAGE_ACCOUNT.test(normalized) || isAppId(normalized);
  }
}
