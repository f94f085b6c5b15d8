import { AuthenticationError, CredentialUnavailableError, WorkloadIdentityCredential } from "@azure/identity";
import type { WorkloadIdentityCredentialOptions } from "@azure/identity";
import { PodIdentityAuthenticationError, PodIdentityUnavailableError } from "./errors";
import type { OAuthErrorBody } from "./errors";
import type { UpstreamToken } from "./parse-token-response";
import type { WorkloadIdentitySettings } from "./pod-identity-credential-options";
import type { TokenSource } from "./token-source";

/**
 * Workload identity (federated service-account token exchanged at Entra ID), delegated to @azure/identity's
 * WorkloadIdentityCredential so apps keep working when a cluster migrates off pod identity. The credential
 * wraps it in the same cache and single-flight as the IMDS path; @azure/identity's own pipeline retries.
 */
export class WorkloadIdentitySource implements TokenSource {
  readonly kind = "workload-identity";
  readonly description: string;
  private readonly credential: WorkloadIdentityCredential;

  constructor(settings: WorkloadIdentitySettings, options: Omit<WorkloadIdentityCredentialOptions, "clientId" | "tenantId" | "tokenFilePath"> = {}) {
    this.description = `workload identity (tenant ${settings.tenantId}, client ${settings.clientId})`;
    this.credential = new WorkloadIdentityCredential({
      ...options,
      clientId: settings.clientId,
      tenantId: settings.tenantId,
      tokenFilePath: settings.tokenFilePath,
    });
  }

  async requestToken(resource: string, signal: AbortSignal, claims?: string): Promise<UpstreamToken> {
    // Entra ID wants a scope; the resource form is what the cache keys on.
    const scope = `${resource.replace(/\/+$/, "")}/.default`;
    let token;
    // Typed once here: callers see this package's codes whatever @azure/identity threw.
    try {
      token = await this.credential.getToken(scope, { abortSignal: signal, ...(claims === undefined ? {} : { claims }) });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      // Entra ID refused (bad federation, unknown app…): definitive, keep status and body.
      const refusal = entraRefusal(error);
      if (refusal !== undefined) {
        const { statusCode, body } = refusal;
        throw new PodIdentityAuthenticationError(
          "REQUEST_REJECTED",
          statusCode,
          body,
          `PodIdentityCredential: Entra ID refused the workload identity token exchange (${statusCode} ${body.error}). ` +
            "Check the federated credential's issuer and subject match this cluster and service account.",
          { cause: error },
        );
      }
      // Unreadable token file, missing settings, network failure: unavailable, so a chain may move on.
      const detail = error instanceof CredentialUnavailableError || error instanceof Error ? error.message : String(error);
      throw new PodIdentityUnavailableError(
        "WORKLOAD_IDENTITY_UNAVAILABLE",
        `PodIdentityCredential: workload identity failed (${detail.split("\n")[0]}). ` +
          "Check AZURE_FEDERATED_TOKEN_FILE is readable and AZURE_TENANT_ID / AZURE_CLIENT_ID are right.",
        { cause: error },
      );
    }
    if (!token) {
      throw new PodIdentityUnavailableError("WORKLOAD_IDENTITY_UNAVAILABLE", "PodIdentityCredential: workload identity returned no token.");
    }
    return { token: token.token, expiresOnTimestamp: token.expiresOnTimestamp };
  }

  async close(): Promise<void> {
    // WorkloadIdentityCredential holds no resources of its own to release.
  }
}

/**
 * Entra ID's answer inside whatever @azure/identity threw: an AuthenticationError, or (as 4.x does for
 * client assertions) an AuthenticationRequiredError whose cause is MSAL's ServerError {errorCode, status}.
 */
function entraRefusal(error: unknown): { statusCode: number; body: OAuthErrorBody } | undefined {
  for (let e = error; e !== null && typeof e === "object"; e = (e as { cause?: unknown }).cause) {
    if (e instanceof AuthenticationError) {
      return { statusCode: e.statusCode, body: { error: e.errorResponse.error, error_description: e.errorResponse.errorDescription } };
    }
    const server = e as { errorCode?: unknown; errorMessage?: unknown; status?: unknown };
    if (typeof server.errorCode === "string" && typeof server.status === "number" && server.status >= 400) {
      return { statusCode: server.status, body: { error: server.errorCode, error_description: String(server.errorMessage ?? "") } };
    }
  }
  return undefined;
}
