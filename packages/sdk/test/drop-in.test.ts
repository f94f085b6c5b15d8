import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { AccessToken, TokenCredential } from "@azure/core-auth";
import { AuthenticationError, ChainedTokenCredential } from "@azure/identity";
import { SecretClient } from "@azure/keyvault-secrets";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { PodIdentityCredential } from "../src/pod-identity-credential";
import { clearAzureEnv } from "./helpers/credential";
import { json, startHttpsServer } from "./helpers/https-server";
import type { HttpsTestServer } from "./helpers/https-server";
import { ImdsTestServer, nmiError } from "./helpers/imds-server";

describe("PodIdentityCredential as a drop-in TokenCredential", () => {
  let imds: ImdsTestServer;
  let vault: HttpsTestServer;
  let vaultAuthHeaders: Array<string | undefined>;

  beforeEach(async () => {
    clearAzureEnv();
    imds = await ImdsTestServer.start();
    vaultAuthHeaders = [];
    // A Key Vault-like server: challenge first, then the secret only for the token IMDS handed out.
    vault = await startHttpsServer((req, res) => {
      const auth = req.headers.authorization;
      vaultAuthHeaders.push(auth);
      const path = new URL(req.url ?? "/", "https://x").pathname.replace(/\/$/, "");
      if (auth === undefined) {
        return json(res, 401, { error: { code: "Unauthorized", message: "AKV10000" } }, {
          "www-authenticate": 'Bearer authorization="https://login.microsoftonline.com/tenant-1", resource="https://vault.azure.net"',
        });
      }
      if (auth !== "Bearer token-1") return json(res, 401, { error: { code: "Unauthorized", message: "bad token" } });
      if (path !== "/secrets/db-password") return json(res, 404, { error: { code: "SecretNotFound", message: path } });
      json(res, 200, {
        value: "s3cr3t",
        id: `${vault.url}/secrets/db-password/0123456789abcdef`,
        attributes: { enabled: true, created: 1_700_000_000, updated: 1_700_000_000, recoveryLevel: "Recoverable" },
      });
    });
  });

  afterEach(async () => {
    await vault.close();
    await imds.close();
    vi.unstubAllEnvs();
  });

  it("SecretClient from @azure/keyvault-secrets reads a secret with it after the 401 challenge", async () => {
    const credential = new PodIdentityCredential({ endpoint: imds.url });
    const client = new SecretClient(vault.url, credential, {
      disableChallengeResourceVerification: true,
      tlsOptions: { ca: vault.cert },
    });
    const secret = await client.getSecret("db-password");
    expect(secret.value).toBe("s3cr3t");
    expect(imds.requests).toHaveLength(1);
    expect(imds.requests[0]!.query.get("resource")).toBe("https://vault.azure.net");
    expect(vaultAuthHeaders).toEqual([undefined, "Bearer token-1"]);
    // The second read reuses the cached token: no further IMDS request.
    expect((await client.getSecret("db-password")).value).toBe("s3cr3t");
    expect(imds.requests).toHaveLength(1);
    await credential.close();
  });

  const fallback: TokenCredential = {
    getToken: async (): Promise<AccessToken> => ({ token: "fallback", expiresOnTimestamp: Date.now() + 3_600_000 }),
  };

  it("ChainedTokenCredential moves on when NMI says this pod has no binding", async () => {
    imds.enqueue(nmiError(403, "podidentity_no_binding"));
    const pod = new PodIdentityCredential({ endpoint: imds.url });
    const token = await new ChainedTokenCredential(pod, fallback).getToken("https://vault.azure.net/.default");
    expect(token?.token).toBe("fallback");
    await pod.close();
  });

  it("ChainedTokenCredential moves on when the endpoint cannot be reached within the retry budget", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const pod = new PodIdentityCredential({ endpoint: `http://127.0.0.1:${port}`, retry: { maxRetries: 1, initialDelayMs: 1, maxDelayMs: 1 } });
    const token = await new ChainedTokenCredential(pod, fallback).getToken("https://vault.azure.net/.default");
    expect(token?.token).toBe("fallback");
    await pod.close();
  });

  it("ChainedTokenCredential stops at a definitive refusal (AuthenticationError)", async () => {
    imds.enqueue({ status: 400, body: { error: "invalid_resource", error_description: "AADSTS50001" } });
    const pod = new PodIdentityCredential({ endpoint: imds.url });
    await expect(new ChainedTokenCredential(pod, fallback).getToken("https://unknown/.default")).rejects.toBeInstanceOf(AuthenticationError);
    await pod.close();
  });
});
