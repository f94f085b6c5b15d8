import { isIP } from "node:net";
import type { Clock } from "./clock";
import { systemClock } from "./clock";
import { ArmServer, type ArmServerOptions } from "./azure/arm-server";
import { AzuriteBlob, type AzuriteBlobOptions } from "./azure/azurite";
import type { ComputeResource } from "./azure/compute-resource";
import { ComputeStore } from "./azure/compute-store";
import { EntraServer, type EntraServerOptions } from "./azure/entra-server";
import type { TlsMaterial } from "./azure/http";
import { IdentityRegistry, type AddServicePrincipalOptions, type ServicePrincipal, type UserAssignedIdentity } from "./azure/identity-registry";
import { ImdsServer, type ImdsServerOptions } from "./azure/imds-server";
import { KeyVaultServer, type KeyVaultServerOptions } from "./azure/keyvault-server";
import { KnownResources } from "./azure/known-resources";
import { TokenIssuer } from "./azure/token-issuer";
import { TestbedCa } from "./tls/testbed-ca";

/** Real Azure host names the testbed's leaf certificates also cover, for apps that use real URLs. */
export const AZURE_HOST_NAMES = [
  "localhost",
  "management.azure.com",
  "login.microsoftonline.com",
  "*.vault.azure.net",
  "*.blob.core.windows.net",
] as const;

export const DEFAULT_AZURE_CLOUD_OPTIONS = {
  resourceGroup: "testbed-rg",
  location: "eastus",
  subscriptionName: "testbed",
} as const;

export interface AzureCloudOptions {
  clock?: Clock;
  tenantId?: string;
  /** Verified domains Entra accepts in place of the tenant ID (default podidentitytestbed.onmicrosoft.com). */
  tenantDomains?: readonly string[];
  subscriptionId?: string;
  resourceGroup?: string;
  location?: string;
  /** Lifetime of managed identity tokens (default 24 h). */
  tokenLifetimeMs?: number;
  /** Reuse a CA (e.g. one shared with the Kubernetes emulator); a new one otherwise. */
  ca?: TestbedCa;
}

type Started = { close(): Promise<void> };
type ServerOverrides<T> = Partial<Omit<T, "clock" | "registry" | "compute" | "tokenIssuer" | "tls">>;

/**
 * The emulated Azure: one tenant, one subscription and resource group by default, shared state
 * (identities, service principals, VMs/VMSS) and the servers, each started on its own.
 */
export class AzureCloud {
  readonly clock: Clock;
  readonly ca: TestbedCa;
  readonly tokenIssuer: TokenIssuer;
  readonly registry: IdentityRegistry;
  readonly compute: ComputeStore;
  readonly knownResources = new KnownResources();
  readonly tenantId: string;
  readonly subscriptionId: string;
  readonly resourceGroup: string;
  readonly location: string;
  readonly #leaves = new Map<string, Promise<TlsMaterial>>();
  readonly #started: Started[] = [];
  readonly #vaults = new Map<string, KeyVaultServer>();

  private constructor(options: AzureCloudOptions, ca: TestbedCa, tokenIssuer: TokenIssuer) {
    this.clock = options.clock ?? systemClock;
    this.ca = ca;
    this.tokenIssuer = tokenIssuer;
    this.registry = new IdentityRegistry({ tenantId: options.tenantId, tenantDomains: options.tenantDomains, clock: this.clock });
    this.tenantId = this.registry.tenantId;
    this.compute = new ComputeStore(this.tenantId);
    this.subscriptionId = this.compute.addSubscription({ subscriptionId: options.subscriptionId, displayName: DEFAULT_AZURE_CLOUD_OPTIONS.subscriptionName }).subscriptionId;
    this.resourceGroup = options.resourceGroup ?? DEFAULT_AZURE_CLOUD_OPTIONS.resourceGroup;
    this.location = options.location ?? DEFAULT_AZURE_CLOUD_OPTIONS.location;
    this.compute.addResourceGroup(this.subscriptionId, this.resourceGroup);
  }

  static async create(options: AzureCloudOptions = {}): Promise<AzureCloud> {
    const clock = options.clock ?? systemClock;
    const [ca, tokenIssuer] = await Promise.all([
      options.ca ?? TestbedCa.create(),
      TokenIssuer.create({ clock, lifetimeMs: options.tokenLifetimeMs }),
    ]);
    return new AzureCloud({ ...options, clock }, ca, tokenIssuer);
  }

  /** A leaf for `host` plus loopback and the real Azure host names, issued once per host. */
  tlsFor(host = "127.0.0.1"): Promise<TlsMaterial> {
    let leaf = this.#leaves.get(host);
    if (!leaf) {
      const ipAddresses = [...new Set(["127.0.0.1", ...(isIP(host) !== 0 && host !== "0.0.0.0" ? [host] : [])])];
      const dnsNames = [...new Set([...AZURE_HOST_NAMES, ...(isIP(host) === 0 ? [host] : [])])];
      leaf = this.ca.issue({ ipAddresses, dnsNames, commonName: "podidentity testbed" });
      this.#leaves.set(host, leaf);
    }
    return leaf;
  }

  async startArm(options: ServerOverrides<ArmServerOptions> = {}): Promise<ArmServer> {
    const server = new ArmServer({
      ...this.#shared(),
      findKeyVault: (name) => this.#vaults.get(name.toLowerCase()),
      ...options,
      tls: await this.tlsFor(options.host),
    });
    return this.#track(await server.start());
  }

  async startEntra(options: ServerOverrides<EntraServerOptions> = {}): Promise<EntraServer> {
    const server = new EntraServer({ ...this.#shared(), knownResources: this.knownResources, ...options, tls: await this.tlsFor(options.host) });
    return this.#track(await server.start());
  }

  /** Starts the IMDS of one node, belonging to the VM or VMSS `resource` (plain HTTP, like the real one). */
  async startImds(nodeName: string, resource: ComputeResource | string, options: ServerOverrides<Omit<ImdsServerOptions, "nodeName" | "resourceId">> = {}): Promise<ImdsServer> {
    const resourceId = typeof resource === "string" ? resource : resource.id;
    const server = new ImdsServer({ ...this.#shared(), knownResources: this.knownResources, ...options, nodeName, resourceId });
    return this.#track(await server.start());
  }

  async startKeyVault(vaultName: string, options: ServerOverrides<Omit<KeyVaultServerOptions, "vaultName" | "tenantId">> = {}): Promise<KeyVaultServer> {
    const server = new KeyVaultServer({
      clock: this.clock,
      tokenIssuer: this.tokenIssuer,
      location: this.location,
      ...options,
      vaultName,
      tenantId: this.tenantId,
      tls: await this.tlsFor(options.host),
    });
    this.#vaults.set(vaultName.toLowerCase(), server);
    return this.#track(await server.start());
  }

  /** Starts the real Azurite blob service with a leaf from this cloud's CA; stopped by {@link close}. */
  async startAzurite(options: Omit<AzuriteBlobOptions, "tls"> = {}): Promise<AzuriteBlob> {
    return this.#track(await AzuriteBlob.start({ ...options, tls: await this.tlsFor(options.host) }));
  }

  createUserAssignedIdentity(name: string, options: { resourceGroup?: string; clientId?: string; principalId?: string } = {}): UserAssignedIdentity {
    const resourceGroup = options.resourceGroup ?? this.resourceGroup;
    this.compute.addResourceGroup(this.subscriptionId, resourceGroup);
    return this.registry.createUserAssignedIdentity({ subscriptionId: this.subscriptionId, resourceGroup, name, location: this.location, clientId: options.clientId, principalId: options.principalId }).identity;
  }

  deleteUserAssignedIdentity(identity: UserAssignedIdentity | string): boolean {
    return this.registry.deleteUserAssignedIdentity(typeof identity === "string" ? identity : identity.id);
  }

  /** A scale set with `capacity` instances (default 1), as `…/virtualMachines` lists them. */
  addScaleSet(name: string, resourceGroup = this.resourceGroup, options: { capacity?: number } = {}): ComputeResource {
    return this.compute.addScaleSet({ subscriptionId: this.subscriptionId, resourceGroup, name, location: this.location, ...options });
  }

  addVirtualMachine(name: string, resourceGroup = this.resourceGroup): ComputeResource {
    return this.compute.addVirtualMachine({ subscriptionId: this.subscriptionId, resourceGroup, name, location: this.location });
  }

  addServicePrincipal(options: AddServicePrincipalOptions = {}): ServicePrincipal {
    return this.registry.addServicePrincipal(options);
  }

  /** Stops every server this cloud started. */
  async close(): Promise<void> {
    const started = this.#started.splice(0);
    this.#vaults.clear();
    await Promise.all(started.map((s) => s.close()));
  }

  #shared(): { clock: Clock; registry: IdentityRegistry; compute: ComputeStore; tokenIssuer: TokenIssuer } {
    return { clock: this.clock, registry: this.registry, compute: this.compute, tokenIssuer: this.tokenIssuer };
  }

  #track<T extends Started>(server: T): T {
    this.#started.push(server);
    return server;
  }
}
