import { createHash, randomUUID, X509Certificate, type KeyObject } from "node:crypto";
import type { Clock } from "../clock";
import { systemClock } from "../clock";

/** A user-assigned managed identity (Microsoft.ManagedIdentity/userAssignedIdentities). */
export interface UserAssignedIdentity {
  /** ARM resource ID in canonical case. */
  readonly id: string;
  readonly name: string;
  readonly subscriptionId: string;
  readonly resourceGroup: string;
  readonly location: string;
  readonly tenantId: string;
  readonly clientId: string;
  readonly principalId: string;
  readonly createdAtMs: number;
}

export interface ServicePrincipalCertificate {
  readonly certPem: string;
  readonly publicKey: KeyObject;
  /** base64url SHA-1 thumbprint, as in a client assertion's `x5t` header. */
  readonly x5t: string;
  /** base64url SHA-256 thumbprint, as in `x5t#S256`. */
  readonly x5tS256: string;
}

/** An app registration with its service principal, able to use the client-credentials flow. */
export interface ServicePrincipal {
  readonly appId: string;
  readonly objectId: string;
  readonly tenantId: string;
  readonly displayName: string;
  readonly secrets: readonly string[];
  readonly certificates: readonly ServicePrincipalCertificate[];
  /** The app's manifest `requestedAccessTokenVersion`: tokens issued *for* this app (as a resource) are v1 or v2. */
  readonly accessTokenVersion: 1 | 2;
}

export interface CreateUserAssignedIdentityOptions {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location?: string;
  /** Fixed IDs, for fixtures; random GUIDs otherwise. */
  clientId?: string;
  principalId?: string;
}

export interface AddServicePrincipalOptions {
  displayName?: string;
  appId?: string;
  objectId?: string;
  secrets?: string[];
  /** PEM certificates whose keys may sign client assertions. */
  certificatePems?: string[];
  /** Tokens for this app as a resource: 1 (Entra's default, `requestedAccessTokenVersion` null) or 2. */
  accessTokenVersion?: 1 | 2;
}

export const DEFAULT_LOCATION = "eastus";

/** The tenant's verified domain unless told otherwise (every tenant has its `<name>.onmicrosoft.com`). */
export const DEFAULT_TENANT_DOMAIN = "podidentitytestbed.onmicrosoft.com";

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{2,127}$/;

/** Builds the canonical resource ID of a user-assigned identity. */
export function userAssignedIdentityId(subscriptionId: string, resourceGroup: string, name: string): string {
  return `/subscriptions/${subscriptionId}/resourcegroups/${resourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${name}`;
}

/**
 * The directory side of the emulated cloud: user-assigned identities and service principals of
 * one tenant. Resource IDs compare case-insensitively, as ARM does.
 */
export class IdentityRegistry {
  readonly tenantId: string;
  /** Verified domains Entra also accepts in place of the tenant ID (`login.microsoftonline.com/contoso.onmicrosoft.com/…`). */
  readonly tenantDomains: readonly string[];
  readonly #clock: Clock;
  readonly #identities = new Map<string, UserAssignedIdentity>();
  readonly #principals = new Map<string, ServicePrincipal>();

  constructor(options: { tenantId?: string; tenantDomains?: readonly string[]; clock?: Clock } = {}) {
    this.tenantId = options.tenantId ?? randomUUID();
    this.tenantDomains = [...(options.tenantDomains ?? [DEFAULT_TENANT_DOMAIN])];
    for (const domain of this.tenantDomains) {
      if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/i.test(domain)) {
        throw new TypeError(`IdentityRegistry: tenant domain "${domain}" is not a DNS name such as contoso.onmicrosoft.com`);
      }
    }
    this.#clock = options.clock ?? systemClock;
  }

  /** True when `tenant` (from a URL path) names this tenant: its ID or one of its verified domains, any case. */
  isTenant(tenant: string): boolean {
    const wanted = tenant.toLowerCase();
    return wanted === this.tenantId.toLowerCase() || this.tenantDomains.some((d) => d.toLowerCase() === wanted);
  }

  /**
   * Creates the identity, or returns the existing one with the same resource ID (ARM PUT is
   * idempotent). A deleted and re-created identity gets new client and principal IDs.
   */
  createUserAssignedIdentity(options: CreateUserAssignedIdentityOptions): { identity: UserAssignedIdentity; created: boolean } {
    if (!NAME_PATTERN.test(options.name)) {
      throw new TypeError(
        `IdentityRegistry: identity name "${options.name}" must be 3-128 characters of letters, digits, '-' or '_', starting with a letter or digit`,
      );
    }
    const id = userAssignedIdentityId(options.subscriptionId, options.resourceGroup, options.name);
    const existing = this.#identities.get(id.toLowerCase());
    if (existing) return { identity: existing, created: false };
    const identity: UserAssignedIdentity = {
      id,
      name: options.name,
      subscriptionId: options.subscriptionId,
      resourceGroup: options.resourceGroup,
      location: options.location ?? DEFAULT_LOCATION,
      tenantId: this.tenantId,
      clientId: options.clientId ?? randomUUID(),
      principalId: options.principalId ?? randomUUID(),
      createdAtMs: this.#clock.now(),
    };
    this.#identities.set(id.toLowerCase(), identity);
    return { identity, created: true };
  }

  deleteUserAssignedIdentity(resourceId: string): boolean {
    return this.#identities.delete(resourceId.toLowerCase());
  }

  getUserAssignedIdentity(resourceId: string): UserAssignedIdentity | undefined {
    return this.#identities.get(resourceId.toLowerCase());
  }

  findUserAssignedIdentityByClientId(clientId: string): UserAssignedIdentity | undefined {
    const wanted = clientId.toLowerCase();
    return [...this.#identities.values()].find((i) => i.clientId.toLowerCase() === wanted);
  }

  listUserAssignedIdentities(): UserAssignedIdentity[] {
    return [...this.#identities.values()];
  }

  addServicePrincipal(options: AddServicePrincipalOptions = {}): ServicePrincipal {
    const certificates = (options.certificatePems ?? []).map(parseCertificate);
    const principal: ServicePrincipal = {
      appId: options.appId ?? randomUUID(),
      objectId: options.objectId ?? randomUUID(),
      tenantId: this.tenantId,
      displayName: options.displayName ?? "testbed-app",
      secrets: [...(options.secrets ?? [])],
      certificates,
      accessTokenVersion: options.accessTokenVersion ?? 1,
    };
    if (this.#principals.has(principal.appId.toLowerCase())) {
      throw new Error(`IdentityRegistry: a service principal with appId ${principal.appId} already exists`);
    }
    this.#principals.set(principal.appId.toLowerCase(), principal);
    return principal;
  }

  getServicePrincipal(appId: string): ServicePrincipal | undefined {
    return this.#principals.get(appId.toLowerCase());
  }

  removeServicePrincipal(appId: string): boolean {
    return this.#principals.delete(appId.toLowerCase());
  }
}

function parseCertificate(certPem: string): ServicePrincipalCertificate {
  const cert = new X509Certificate(certPem);
  const der = cert.raw;
  return {
    certPem,
    publicKey: cert.publicKey,
    x5t: createHash("sha1").update(der).digest("base64url"),
    x5tS256: createHash("sha256").update(der).digest("base64url"),
  };
}
