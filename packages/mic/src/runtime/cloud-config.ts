import { unwatchFile, watchFile, type Stats } from "node:fs";
import { readFile } from "node:fs/promises";
import type { AccessToken, GetTokenOptions, TokenCredential } from "@azure/core-auth";
import { ClientSecretCredential, ManagedIdentityCredential } from "@azure/identity";
import { CloudConfigError } from "../errors";

/** The azure.json keys MIC reads (AKS writes this file on every node), as v1.8. */
export interface CloudConfig {
  cloud: string;
  tenantId?: string;
  aadClientId?: string;
  aadClientSecret?: string;
  subscriptionId?: string;
  resourceGroup?: string;
  vmType?: string;
  useManagedIdentityExtension: boolean;
  userAssignedIdentityID?: string;
}

export interface CloudEndpoints {
  /** ARM base URL. */
  resourceManager: string;
  /** Entra ID authority host. */
  authorityHost: string;
  /** Token audience for ARM (independent of where requests are sent, so emulators accept real audiences). */
  armScope: string;
}

export const CLOUD_ENDPOINTS: Readonly<Record<string, CloudEndpoints>> = {
  azurepubliccloud: { resourceManager: "https://management.azure.com", authorityHost: "https://login.microsoftonline.com", armScope: "https://management.azure.com/.default" },
  azurechinacloud: { resourceManager: "https://management.chinacloudapi.cn", authorityHost: "https://login.chinacloudapi.cn", armScope: "https://management.chinacloudapi.cn/.default" },
  azureusgovernmentcloud: { resourceManager: "https://management.usgovcloudapi.net", authorityHost: "https://login.microsoftonline.us", armScope: "https://management.usgovcloudapi.net/.default" },
};

export function cloudEndpoints(cloud: string): CloudEndpoints {
  const endpoints = CLOUD_ENDPOINTS[(cloud || "AzurePublicCloud").toLowerCase()];
  if (!endpoints) {
    throw new CloudConfigError(`unknown cloud "${cloud}" in azure.json; use AzurePublicCloud, AzureChinaCloud or AzureUSGovernmentCloud, or set --arm-endpoint and --authority-host`);
  }
  return endpoints;
}

function str(value: unknown): string | undefined {
  return typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;
}

function bool(value: unknown): boolean {
  return value === true || (typeof value === "string" && /^(true|1|yes)$/i.test(value.trim()));
}

/** Parses azure.json text. Errors name the file and the key, never a secret's value. */
export function parseCloudConfig(text: string, source = "azure.json"): CloudConfig {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    throw new CloudConfigError(`${source} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw new CloudConfigError(`${source} must contain a JSON object`);
  const config: CloudConfig = { cloud: str(json["cloud"]) ?? "AzurePublicCloud", useManagedIdentityExtension: bool(json["useManagedIdentityExtension"]) };
  for (const key of ["tenantId", "aadClientId", "aadClientSecret", "subscriptionId", "resourceGroup", "vmType", "userAssignedIdentityID"] as const) {
    const value = str(json[key]);
    if (value !== undefined) config[key] = value;
  }
  return config;
}

export async function readCloudConfig(path: string): Promise<CloudConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new CloudConfigError(`cannot read --cloudconfig ${path}: ${(error as Error).message}`, { cause: error });
  }
  return parseCloudConfig(text, path);
}

/** v1.8's environment fallback when no --cloudconfig is given (the Helm chart's adminsecret). */
export function cloudConfigFromEnv(env: Record<string, string | undefined>): CloudConfig {
  const config: CloudConfig = { cloud: str(env["CLOUD"]) ?? "AzurePublicCloud", useManagedIdentityExtension: bool(env["USE_MSI"]) };
  const map = {
    tenantId: "TENANT_ID",
    aadClientId: "CLIENT_ID",
    aadClientSecret: "CLIENT_SECRET",
    subscriptionId: "SUBSCRIPTION_ID",
    resourceGroup: "RESOURCE_GROUP",
    vmType: "VM_TYPE",
    userAssignedIdentityID: "USER_ASSIGNED_MSI_CLIENT_ID",
  } as const;
  for (const [key, name] of Object.entries(map) as Array<[keyof typeof map, string]>) {
    const value = str(env[name]);
    if (value !== undefined) config[key] = value;
  }
  return config;
}

/**
 * The credential MIC uses for ARM, as v1.8 chose it: a service principal (tenantId, aadClientId,
 * aadClientSecret) unless useManagedIdentityExtension is set; then the user-assigned identity
 * userAssignedIdentityID (a client ID) when given, else the system-assigned one.
 */
export function createArmCredential(config: CloudConfig, options: { authorityHost?: string } = {}): TokenCredential {
  const known = Object.values(CLOUD_ENDPOINTS).some((c) => c.authorityHost === options.authorityHost?.replace(/\/+$/, ""));
  if (config.useManagedIdentityExtension) {
    return config.userAssignedIdentityID ? new ManagedIdentityCredential({ clientId: config.userAssignedIdentityID }) : new ManagedIdentityCredential();
  }
  const missing = (["tenantId", "aadClientId", "aadClientSecret"] as const).filter((k) => config[k] === undefined);
  if (missing.length > 0) {
    throw new CloudConfigError(
      `the cloud config lacks ${missing.join(", ")}: set them in azure.json (--cloudconfig) or TENANT_ID/CLIENT_ID/CLIENT_SECRET, or set useManagedIdentityExtension`,
    );
  }
  const authorityHost = options.authorityHost ?? cloudEndpoints(config.cloud).authorityHost;
  // Instance discovery only knows Azure's own authorities; an emulator or private cloud host has none to offer.
  return new ClientSecretCredential(config.tenantId!, config.aadClientId!, config.aadClientSecret!, {
    authorityHost,
    ...(options.authorityHost !== undefined && !known && { disableInstanceDiscovery: true }),
  });
}

/**
 * v1.8 re-created its ARM client when azure.json changed (AKS rotates the service principal's secret there).
 * This credential re-reads the file when its modification time changes and switches to a credential built from
 * the new content; an unreadable or invalid file keeps the previous credential (and is reported).
 */
export class ReloadingArmCredential implements TokenCredential {
  #current: TokenCredential;
  readonly #path: string;
  readonly #options: { authorityHost?: string };
  readonly #onError: (error: Error) => void;
  readonly #listener: (curr: Stats, prev: Stats) => void;

  constructor(path: string, initial: TokenCredential, options: { authorityHost?: string; intervalMs?: number; onError?: (error: Error) => void } = {}) {
    this.#path = path;
    this.#current = initial;
    this.#options = options.authorityHost !== undefined ? { authorityHost: options.authorityHost } : {};
    this.#onError = options.onError ?? (() => undefined);
    this.#listener = (curr, prev) => {
      if (curr.mtimeMs !== prev.mtimeMs) void this.reload();
    };
    watchFile(path, { interval: options.intervalMs ?? 10_000, persistent: false }, this.#listener);
  }

  /** Re-reads the file now. */
  async reload(): Promise<void> {
    try {
      this.#current = createArmCredential(await readCloudConfig(this.#path), this.#options);
    } catch (error) {
      this.#onError(error as Error);
    }
  }

  getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken | null> {
    return this.#current.getToken(scopes, options);
  }

  close(): void {
    unwatchFile(this.#path, this.#listener);
  }
}
