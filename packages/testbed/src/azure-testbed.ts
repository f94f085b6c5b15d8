import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { ArmServer } from "./azure/arm-server";
import type { AzuriteBlob } from "./azure/azurite";
import type { ComputeResource } from "./azure/compute-resource";
import type { EntraServer } from "./azure/entra-server";
import type { ServicePrincipal } from "./azure/identity-registry";
import type { ImdsServer } from "./azure/imds-server";
import type { KeyVaultServer } from "./azure/keyvault-server";
import { AzureCloud, type AzureCloudOptions } from "./cloud";

export const DEFAULT_AZURE_TESTBED_OPTIONS = {
  host: "127.0.0.1",
  scaleSetName: "aks-nodepool1-vmss",
  nodeCount: 2,
  vaultName: "testbed-kv",
  azurite: false,
} as const;

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

  private constructor(parts: {
    cloud: AzureCloud;
    arm: ArmServer;
    entra: EntraServer;
    keyVault: KeyVaultServer;
    scaleSet: ComputeResource;
    imds: ImdsServer[];
    azurite: AzuriteBlob | undefined;
    mic: ServicePrincipal & { secret: string };
  }) {
    this.cloud = parts.cloud;
    this.arm = parts.arm;
    this.entra = parts.entra;
    this.keyVault = parts.keyVault;
    this.scaleSet = parts.scaleSet;
    this.imds = parts.imds;
    this.azurite = parts.azurite;
    this.mic = parts.mic;
  }

  static async start(options: AzureTestbedOptions = {}): Promise<AzureTestbed> {
    const host = options.host ?? DEFAULT_AZURE_TESTBED_OPTIONS.host;
    const cloud = await AzureCloud.create(options);
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
      return new AzureTestbed({ cloud, arm, entra, keyVault, scaleSet, imds, azurite, mic });
    } catch (error) {
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
      mic: { clientId: this.mic.appId, clientSecret: this.mic.secret, objectId: this.mic.objectId },
    };
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
  async writeFiles(dir: string): Promise<{ caPath: string; envPath: string; jsonPath: string }> {
    const absolute = resolve(dir);
    await mkdir(absolute, { recursive: true });
    const caPath = await this.cloud.ca.writeCaFile(absolute);
    const envPath = join(absolute, "testbed.env");
    const jsonPath = join(absolute, "testbed.json");
    // The env file holds the MIC secret: owner-only.
    await writeFile(envPath, this.envFile(caPath), { mode: 0o600 });
    await writeFile(jsonPath, JSON.stringify(this.endpoints(), null, 2) + "\n", { mode: 0o600 });
    return { caPath, envPath, jsonPath };
  }

  close(): Promise<void> {
    return this.cloud.close();
  }
}
