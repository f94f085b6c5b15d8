import { randomBytes } from "node:crypto";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { ArmServer } from "./azure/arm-server";
import type { AzuriteBlob } from "./azure/azurite";
import type { ComputeResource } from "./azure/compute-resource";
import type { EntraServer } from "./azure/entra-server";
import type { ServicePrincipal, UserAssignedIdentity } from "./azure/identity-registry";
import type { ImdsServer } from "./azure/imds-server";
import type { KeyVaultServer } from "./azure/keyvault-server";
import { AzureHostProxy } from "./azure-host-proxy";
import { AzureCloud, type AzureCloudOptions } from "./cloud";

export const DEFAULT_AZURE_TESTBED_OPTIONS = {
  host: "127.0.0.1",
  scaleSetName: "aks-nodepool1-vmss",
  nodeCount: 2,
  vaultName: "testbed-kv",
  azurite: false,
} as const;

/** The file in the CLI's --dir holding {@link AzureTestbed.appEnvironment} as `KEY=value` lines. */
export const APP_ENV_FILE = "app.env";

export interface AzureTestbedOptions extends AzureCloudOptions {
  /** Address every server binds (an infrastructure address inside a network namespace, or loopback). */
  host?: string;
  armPort?: number;
  entraPort?: number;
  keyVaultPort?: number;
  /** IMDS of node i listens on imdsBasePort + i (0: ephemeral ports). */
  imdsBasePort?: number;
  scaleSetName?: string;
  nodeCount?: number;
  vaultName?: string;
  azurite?: boolean;
  operationDurationMs?: number;
  propagationDelayMs?: number;
  /**
   * Start the HTTPS proxy that maps the real Azure host names to these emulators (see src/azure-host-proxy.ts) on
   * this port (0: any free port); no proxy when undefined.
   */
  proxyPort?: number;
}

export interface AzureTestbedEndpoints {
  tenantId: string;
  subscriptionId: string;
  resourceGroup: string;
  scaleSetId: string;
  arm: string;
  entra: string;
  keyVault: string;
  imds: Record<string, string>;
  blob: string | undefined;
  /** The CONNECT proxy for the real host names, when started. */
  proxy: string | undefined;
  /** The vault under its real name, as apps address it through the proxy. */
  keyVaultRealUrl: string;
  /** Identities added with addAppIdentity, in order: the first is the app's default (AZURE_CLIENT_ID). */
  identities: { name: string; clientId: string; principalId: string; resourceId: string }[];
  /** The service principal MIC uses for ARM (client-credentials with a secret). */
  mic: { clientId: string; clientSecret: string; objectId: string };
}

/**
 * Everything Azure in one call: ARM, Entra, a Key Vault, one IMDS per node of one scale set, and
 * optionally Azurite — the state behind `podidentity-testbed up`, usable in-process by tests.
 */
export class AzureTestbed {
  readonly cloud: AzureCloud;
  readonly arm: ArmServer;
  readonly entra: EntraServer;
  readonly keyVault: KeyVaultServer;
  readonly scaleSet: ComputeResource;
  readonly imds: ImdsServer[];
  readonly azurite: AzuriteBlob | undefined;
  readonly mic: ServicePrincipal & { secret: string };
  readonly proxy: AzureHostProxy | undefined;
  readonly vaultName: string;
  readonly #appIdentities: UserAssignedIdentity[] = [];

  private constructor(parts: {
    cloud: AzureCloud;
    arm: ArmServer;
    entra: EntraServer;
    keyVault: KeyVaultServer;
    scaleSet: ComputeResource;
    imds: ImdsServer[];
    azurite: AzuriteBlob | undefined;
    mic: ServicePrincipal & { secret: string };
    proxy: AzureHostProxy | undefined;
    vaultName: string;
  }) {
    this.cloud = parts.cloud;
    this.arm = parts.arm;
    this.entra = parts.entra;
    this.keyVault = parts.keyVault;
    this.scaleSet = parts.scaleSet;
    this.imds = parts.imds;
    this.azurite = parts.azurite;
    this.mic = parts.mic;
    this.proxy = parts.proxy;
    this.vaultName = parts.vaultName;
  }

  static async start(options: AzureTestbedOptions = {}): Promise<AzureTestbed> {
    const host = options.host ?? DEFAULT_AZURE_TESTBED_OPTIONS.host;
    const cloud = await AzureCloud.create(options);
    let proxy: AzureHostProxy | undefined;
    try {
      const scaleSet = cloud.addScaleSet(options.scaleSetName ?? DEFAULT_AZURE_TESTBED_OPTIONS.scaleSetName);
      const secret = randomBytes(24).toString("base64url");
      const mic = { ...cloud.addServicePrincipal({ displayName: "podidentity-mic", secrets: [secret] }), secret };
      const [arm, entra, keyVault] = await Promise.all([
        cloud.startArm({ host, port: options.armPort, operationDurationMs: options.operationDurationMs, propagationDelayMs: options.propagationDelayMs }),
        cloud.startEntra({ host, port: options.entraPort }),
        cloud.startKeyVault(options.vaultName ?? DEFAULT_AZURE_TESTBED_OPTIONS.vaultName, { host, port: options.keyVaultPort }),
      ]);
      const nodeCount = options.nodeCount ?? DEFAULT_AZURE_TESTBED_OPTIONS.nodeCount;
      const imds: ImdsServer[] = [];
      for (let i = 0; i < nodeCount; i++) {
        const port = options.imdsBasePort ? options.imdsBasePort + i : 0;
        imds.push(await cloud.startImds(`${scaleSet.name}${String(i).padStart(6, "0")}`, scaleSet, { host, port }));
      }
      const azurite = options.azurite ?? DEFAULT_AZURE_TESTBED_OPTIONS.azurite ? await cloud.startAzurite({ host }) : undefined;
      const vaultName = (options.vaultName ?? DEFAULT_AZURE_TESTBED_OPTIONS.vaultName).toLowerCase();
      if (options.proxyPort !== undefined) {
        const target = (url: string): { host: string; port: number } => ({ host: new URL(url).hostname, port: Number(new URL(url).port) });
        proxy = new AzureHostProxy({ host: "127.0.0.1", port: options.proxyPort })
          .route("management.azure.com", target(arm.url))
          .route("login.microsoftonline.com", target(entra.url))
          .route(`${vaultName}.vault.azure.net`, target(keyVault.url));
        // Azurite reads the account from the first label of a production-style host name.
        if (azurite) proxy.route("devstoreaccount1.blob.core.windows.net", target(azurite.url));
        await proxy.start();
      }
      return new AzureTestbed({ cloud, arm, entra, keyVault, scaleSet, imds, azurite, mic, proxy, vaultName });
    } catch (error) {
      await proxy?.close();
      await cloud.close();
      throw error;
    }
  }

  endpoints(): AzureTestbedEndpoints {
    return {
      tenantId: this.cloud.tenantId,
      subscriptionId: this.cloud.subscriptionId,
      resourceGroup: this.cloud.resourceGroup,
      scaleSetId: this.scaleSet.id,
      arm: this.arm.url,
      entra: this.entra.url,
      keyVault: this.keyVault.url,
      imds: Object.fromEntries(this.imds.map((s) => [s.nodeName, s.url])),
      blob: this.azurite?.accountUrl,
      proxy: this.proxy?.url,
      keyVaultRealUrl: `https://${this.vaultName}.vault.azure.net`,
      identities: this.#appIdentities.map((i) => ({ name: i.name, clientId: i.clientId, principalId: i.principalId, resourceId: i.id })),
      mic: { clientId: this.mic.appId, clientSecret: this.mic.secret, objectId: this.mic.objectId },
    };
  }

  /**
   * A user-assigned identity for an app run on this machine: created in ARM/Entra and assigned to the scale set at
   * once (no operation, no propagation delay), so every node's IMDS hands out its tokens. The first one added is the
   * app's default (AZURE_CLIENT_ID in {@link appEnvironment}).
   */
  addAppIdentity(name: string): UserAssignedIdentity {
    if (this.#appIdentities.some((i) => i.name.toLowerCase() === name.toLowerCase())) {
      throw new TypeError(`AzureTestbed.addAppIdentity: identity "${name}" was given twice`);
    }
    const identity = this.cloud.createUserAssignedIdentity(name);
    const userAssignedIdentities = Object.fromEntries([...this.#appIdentities, identity].map((i) => [i.id, {}]));
    this.scaleSet.applyIdentityPatch({ type: "UserAssigned", userAssignedIdentities }, this.cloud.registry, { effectiveAtMs: this.cloud.clock.now() });
    this.#appIdentities.push(identity);
    return identity;
  }

  /** Stores a Key Vault secret and lets every identity added with {@link addAppIdentity} get and list secrets. */
  addAppSecret(name: string, value: string): string {
    if (this.#appIdentities.length === 0) throw new TypeError("AzureTestbed.addAppSecret: add an identity first (--identity NAME): a secret nobody may read is of no use");
    const version = this.keyVault.putSecret(name, value);
    for (const identity of this.#appIdentities) this.keyVault.setAccessPolicy(identity.principalId, ["get", "list"]);
    return version;
  }

  /**
   * What an unchanged app needs to run against this testbed (`KEY=value` pairs): HTTPS through the proxy (which
   * maps the real host names to the emulators), the CA, and the IMDS emulator of node 0 for PodIdentityCredential
   * and @azure/identity's ManagedIdentityCredential. Loopback bypasses the proxy, for IMDS.
   */
  appEnvironment(caPath: string): Record<string, string> {
    if (!this.proxy) throw new TypeError("AzureTestbed.appEnvironment: the testbed was started without proxyPort");
    const env: Record<string, string> = {
      HTTPS_PROXY: this.proxy.url,
      https_proxy: this.proxy.url,
      NO_PROXY: "127.0.0.1,localhost",
      no_proxy: "127.0.0.1,localhost",
      NODE_EXTRA_CA_CERTS: caPath,
      REQUESTS_CA_BUNDLE: caPath,
      SSL_CERT_FILE: caPath,
      CURL_CA_BUNDLE: caPath,
      AZURE_POD_IDENTITY_AUTHORITY_HOST: this.imds[0]?.url ?? "",
    };
    const first = this.#appIdentities[0];
    if (first) env["AZURE_CLIENT_ID"] = first.clientId;
    return env;
  }

  /** Shell-style `KEY=value` lines for the env file (clients trust the CA through the two CA variables). */
  envFile(caPath: string): string {
    const e = this.endpoints();
    const lines: Record<string, string> = {
      AZURE_TENANT_ID: e.tenantId,
      AZURE_SUBSCRIPTION_ID: e.subscriptionId,
      AZURE_RESOURCE_GROUP: e.resourceGroup,
      AZURE_AUTHORITY_HOST: e.entra,
      PODIDENTITY_TESTBED_ARM_ENDPOINT: e.arm,
      PODIDENTITY_TESTBED_KEYVAULT_URL: e.keyVault,
      PODIDENTITY_TESTBED_VMSS_ID: e.scaleSetId,
      PODIDENTITY_TESTBED_MIC_CLIENT_ID: e.mic.clientId,
      PODIDENTITY_TESTBED_MIC_CLIENT_SECRET: e.mic.clientSecret,
      AZURE_POD_IDENTITY_AUTHORITY_HOST: this.imds[0]?.url ?? "",
      NODE_EXTRA_CA_CERTS: caPath,
      REQUESTS_CA_BUNDLE: caPath,
    };
    this.imds.forEach((s, i) => (lines[`PODIDENTITY_TESTBED_IMDS_${i}`] = s.url));
    if (e.blob) lines["PODIDENTITY_TESTBED_BLOB_URL"] = e.blob;
    return Object.entries(lines).map(([k, v]) => `${k}=${v}`).join("\n") + "\n";
  }

  /** Writes ca.pem, testbed.env and testbed.json into `dir`; returns their paths. */
  async writeFiles(dir: string): Promise<{ caPath: string; envPath: string; jsonPath: string; appEnvPath: string | undefined }> {
    const absolute = resolve(dir);
    await mkdir(absolute, { recursive: true });
    const caPath = await this.cloud.ca.writeCaFile(absolute);
    const envPath = join(absolute, "testbed.env");
    const jsonPath = join(absolute, "testbed.json");
    // The env file holds the MIC secret: owner-only.
    await writeFile(envPath, this.envFile(caPath), { mode: 0o600 });
    await writeFile(jsonPath, JSON.stringify(this.endpoints(), null, 2) + "\n", { mode: 0o600 });
    if (!this.proxy) return { caPath, envPath, jsonPath, appEnvPath: undefined };
    // Written last: `podidentity-testbed env` waits for this file as the sign that the testbed is ready.
    const appEnvPath = join(absolute, APP_ENV_FILE);
    const appEnv = Object.entries(this.appEnvironment(caPath)).map(([k, v]) => `${k}=${v}`).join("\n") + "\n";
    await writeFile(`${appEnvPath}.tmp`, appEnv, { mode: 0o600 });
    await rename(`${appEnvPath}.tmp`, appEnvPath);
    return { caPath, envPath, jsonPath, appEnvPath };
  }

  async close(): Promise<void> {
    await this.proxy?.close();
    await this.cloud.close();
  }
}
