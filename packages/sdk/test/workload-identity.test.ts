import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuthenticationError } from "@azure/identity";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { PodIdentityCredential } from "../src/pod-identity-credential";
import { clearAzureEnv } from "./helpers/credential";
import { json, startHttpsServer } from "./helpers/https-server";
import type { HttpsTestServer } from "./helpers/https-server";

const TENANT = "72f988bf-0000-0000-0000-000000000001";
const CLIENT = "app-client-id";
const ASSERTION = "federated-service-account-token";

interface TokenRequest {
  path: string;
  form: URLSearchParams;
}

describe("PodIdentityCredential on workload identity", () => {
  let entra: HttpsTestServer;
  let tokenRequests: TokenRequest[];
  let dir: string;
  let refuse: boolean;

  beforeEach(async () => {
    clearAzureEnv();
    tokenRequests = [];
    refuse = false;
    // An Entra-like authority: OpenID metadata plus a token endpoint that checks the federated assertion.
    entra = await startHttpsServer((req, res, body) => {
      const path = new URL(req.url ?? "/", "https://x").pathname;
      if (path === `/${TENANT}/v2.0/.well-known/openid-configuration`) {
        return json(res, 200, {
          token_endpoint: `${entra.url}/${TENANT}/oauth2/v2.0/token`,
          authorization_endpoint: `${entra.url}/${TENANT}/oauth2/v2.0/authorize`,
          issuer: `${entra.url}/${TENANT}/v2.0`,
          jwks_uri: `${entra.url}/${TENANT}/discovery/v2.0/keys`,
          end_session_endpoint: `${entra.url}/${TENANT}/oauth2/v2.0/logout`,
        });
      }
      if (path === `/${TENANT}/oauth2/v2.0/token` && req.method === "POST") {
        const form = new URLSearchParams(body);
        tokenRequests.push({ path, form });
        if (refuse || form.get("client_assertion") !== ASSERTION || form.get("client_id") !== CLIENT) {
          return json(res, 400, { error: "invalid_client", error_description: "AADSTS700213: No matching federated identity record found", error_codes: [700213] });
        }
        setTimeout(() => json(res, 200, { token_type: "Bearer", expires_in: 3600, ext_expires_in: 3600, access_token: `wi-token-${tokenRequests.length}` }), 30);
        return;
      }
      json(res, 404, { error: "not_found", error_description: path });
    });
    dir = await mkdtemp(join(tmpdir(), "podidentity-wi-"));
    await writeFile(join(dir, "token"), `${ASSERTION}\n`);
    vi.stubEnv("AZURE_FEDERATED_TOKEN_FILE", join(dir, "token"));
    vi.stubEnv("AZURE_CLIENT_ID", CLIENT);
    vi.stubEnv("AZURE_TENANT_ID", TENANT);
  });

  afterEach(async () => {
    vi.unstubAllEnvs();
    await entra.close();
    await rm(dir, { recursive: true, force: true });
  });

  function credential(): PodIdentityCredential {
    return new PodIdentityCredential({
      // Points @azure/identity at the local authority; its certificate is trusted for this client only.
      workloadIdentity: { authorityHost: entra.url, disableInstanceDiscovery: true, tlsOptions: { ca: entra.cert } },
    });
  }

  it("exchanges the federated token at Entra ID, behind the same cache and single-flight", async () => {
    const c = credential();
    expect(c.mode).toBe("workload-identity");
    const tokens = await Promise.all(Array.from({ length: 50 }, () => c.getToken("https://vault.azure.net/.default")));
    expect(new Set(tokens.map((t) => t.token))).toEqual(new Set(["wi-token-1"]));
    expect(tokenRequests).toHaveLength(1);
    expect(tokenRequests[0]!.form.get("scope")).toBe("https://vault.azure.net/.default");
    expect(tokenRequests[0]!.form.get("client_assertion_type")).toBe("urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    const again = await c.getToken("https://vault.azure.net/.default");
    expect(again.token).toBe("wi-token-1");
    expect(again.refreshAfterTimestamp).toBeLessThan(again.expiresOnTimestamp);
    expect(tokenRequests).toHaveLength(1);
    await c.close();
  });

  it("an unreadable federated token file is CredentialUnavailableError WORKLOAD_IDENTITY_UNAVAILABLE", async () => {
    vi.stubEnv("AZURE_FEDERATED_TOKEN_FILE", join(dir, "missing"));
    const c = credential();
    await expect(c.getToken("https://vault.azure.net/.default")).rejects.toMatchObject({
      name: "CredentialUnavailableError",
      code: "WORKLOAD_IDENTITY_UNAVAILABLE",
    });
    expect(tokenRequests).toHaveLength(0);
    await c.close();
  });

  it("an Entra refusal is an AuthenticationError REQUEST_REJECTED with the status and error code", async () => {
    refuse = true;
    const c = credential();
    const error = await c.getToken("https://vault.azure.net/.default").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthenticationError);
    expect(error).toMatchObject({ code: "REQUEST_REJECTED", statusCode: 400, errorBody: { error: "invalid_client" } });
    await c.close();
  });
});
