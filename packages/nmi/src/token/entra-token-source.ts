import { Agent as HttpsAgent } from "node:https";
import type { TokenCredential } from "@azure/identity";
import type { PipelinePolicy } from "@azure/core-rest-pipeline";
import { DEFAULT_AD_ENDPOINT, IDENTITY_TYPE, namespaceOf, type AzureIdentity } from "@podidentity/api";
import { NmiError } from "../errors";
import { KubeApiError, type KubeClient } from "@podidentity/kube";
import type { SecretObject } from "../kube-objects";
import { IDENTITY_INVALID_CODE, certificatePemFrom, clientSecretFrom } from "./secret-credentials";
import { upstreamFailure } from "./upstream-error";
import type { AcquiredToken, TokenSource } from "./token-source";

export interface EntraTokenSourceOptions {
  client: KubeClient;
  retryAfterSeconds: number;
  /** Extra CA (PEM) for the authority host: private clouds, and the testbed's Entra emulator. */
  caPem?: string;
  onCall?: (outcome: string, seconds: number) => void;
}

/** `https://vault.azure.net` → `https://vault.azure.net/.default` (IMDS takes resources, Entra v2 scopes). */
export function scopeOf(resource: string): string {
  return `${resource.replace(/\/+$/, "")}/.default`;
}

/**
 * Types 1 and 2 (service principal with a secret or a certificate): the secret is read from the Secret the
 * AzureIdentity's `clientPassword` names (a `get`, only when the token cache misses), the token comes from Entra
 * ID at the identity's `adEndpoint`/`tenantID` through @azure/identity. With `auxiliaryTenantIDs` the answer is
 * the primary tenant's token followed by one per auxiliary tenant, as v1.8's multi-tenant flow.
 */
export class EntraTokenSource implements TokenSource {
  readonly #o: EntraTokenSourceOptions;
  readonly #policy: { policy: PipelinePolicy; position: "perCall" } | undefined;

  constructor(options: EntraTokenSourceOptions) {
    this.#o = options;
    if (options.caPem !== undefined) {
      const agent = new HttpsAgent({ ca: options.caPem, keepAlive: true });
      this.#policy = {
        position: "perCall",
        policy: { name: "nmiTrustCa", sendRequest: (req, next) => ((req.agent = agent), next(req)) },
      };
    }
  }

  async acquire(identity: AzureIdentity, resource: string): Promise<AcquiredToken[]> {
    const credential = await this.#credential(identity);
    const tenants = [undefined, ...(identity.spec.auxiliaryTenantIDs ?? [])];
    const tokens: AcquiredToken[] = [];
    for (const tenantId of tenants) {
      const started = performance.now();
      try {
        const t = await credential.getToken(scopeOf(resource), tenantId === undefined ? {} : { tenantId });
        if (t === null) throw new Error("Entra ID returned no token");
        this.#o.onCall?.("ok", (performance.now() - started) / 1000);
        tokens.push({
          accessToken: t.token,
          expiresOnMs: t.expiresOnTimestamp,
          resource,
          tokenType: t.tokenType ?? "Bearer",
          clientId: identity.spec.clientID ?? "",
        });
      } catch (error) {
        this.#o.onCall?.("error", (performance.now() - started) / 1000);
        throw this.#translate(error);
      }
    }
    return tokens;
  }

  /**
   * Entra errors → NMI's. @azure/identity raises AuthenticationError with Entra's status and body, or (for
   * confidential clients) AuthenticationRequiredError whose cause is MSAL's ServerError with `status`,
   * `errorCode` and `errorMessage`.
   */
  #translate(error: unknown): Error {
    if (error instanceof Error && error.name === "AuthenticationError" && "errorResponse" in error && "statusCode" in error) {
      const e = error as Error & { statusCode: number; errorResponse: { error: string; errorDescription: string } };
      const body = { error: e.errorResponse.error, error_description: e.errorResponse.errorDescription };
      return upstreamFailure("Entra ID", e.statusCode === 0 ? undefined : e.statusCode, body, this.#o.retryAfterSeconds, error);
    }
    const cause = (error as { cause?: { status?: unknown; errorCode?: unknown; errorMessage?: unknown } } | undefined)?.cause;
    if (typeof cause?.status === "number" && typeof cause.errorCode === "string") {
      const message = typeof cause.errorMessage === "string" ? cause.errorMessage : "";
      const description = /Description: (AADSTS[^\r\n]*?)(?: Trace ID:|\r|\n|$)/.exec(message)?.[1] ?? message.split(/\r?\n/)[0] ?? "";
      return upstreamFailure("Entra ID", cause.status, { error: cause.errorCode, error_description: description.trim() }, this.#o.retryAfterSeconds, error);
    }
    // CredentialUnavailableError, network failures: Entra could not be asked.
    return upstreamFailure("Entra ID", undefined, undefined, this.#o.retryAfterSeconds, error);
  }

  async #credential(identity: AzureIdentity): Promise<TokenCredential> {
    const { tenantID, clientID, clientPassword } = identity.spec;
    const where = `AzureIdentity ${namespaceOf(identity)}/${identity.metadata.name ?? ""}`;
    if (!tenantID || !clientID || !clientPassword?.name) {
      throw new NmiError(500, IDENTITY_INVALID_CODE, `${where} needs tenantID, clientID and clientPassword {name, namespace}`);
    }
    const secretNamespace = clientPassword.namespace ?? namespaceOf(identity);
    const secretWhere = `Secret ${secretNamespace}/${clientPassword.name} (clientPassword of ${where})`;
    let data: Record<string, string>;
    try {
      const secret = await this.#o.client.get<SecretObject>(`/api/v1/namespaces/${encodeURIComponent(secretNamespace)}/secrets/${encodeURIComponent(clientPassword.name)}`);
      data = secret.data ?? {};
    } catch (cause) {
      const status = cause instanceof KubeApiError ? cause.statusCode : 0;
      if (status === 404 || status === 403) {
        throw new NmiError(500, IDENTITY_INVALID_CODE, `${secretWhere} could not be read (${status}); create it, or grant NMI get on secrets`, { cause });
      }
      throw new NmiError(503, "podidentity_upstream_unavailable", `${secretWhere} could not be read: the API server did not answer`, {
        cause,
        retryAfterSeconds: this.#o.retryAfterSeconds,
      });
    }
    const options = {
      authorityHost: identity.spec.adEndpoint ?? DEFAULT_AD_ENDPOINT,
      // The authority is given explicitly; instance discovery would call the public cloud for any other host.
      disableInstanceDiscovery: true,
      additionallyAllowedTenants: identity.spec.auxiliaryTenantIDs ?? [],
      ...(this.#policy !== undefined && { additionalPolicies: [this.#policy] }),
    };
    // Loaded on first use: @azure/identity (with MSAL) costs ~40 MB of RSS that nodes with only managed
    // identities should not pay.
    const { ClientCertificateCredential, ClientSecretCredential } = await import("@azure/identity");
    if (identity.spec.type === IDENTITY_TYPE.ServicePrincipal) {
      return new ClientSecretCredential(tenantID, clientID, clientSecretFrom(data, secretWhere), options);
    }
    return new ClientCertificateCredential(tenantID, clientID, { certificate: await certificatePemFrom(data, secretWhere) }, options);
  }
}
