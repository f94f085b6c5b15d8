import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { KeyVaultServer } from "@podidentity/testbed";
import { ExampleCloud } from "./helpers/example-cloud";

describe("keyvault-secret example", () => {
  let env: ExampleCloud;
  let vault: KeyVaultServer;

  beforeEach(async () => {
    env = await ExampleCloud.start();
    vault = await env.cloud.startKeyVault("example-kv");
  });
  afterEach(async () => {
    await env.close();
  });

  it("reads the secret with the node identity's token and prints name, version and length, never the value", async () => {
    const version = vault.putSecret("db-password", "correct horse battery staple");
    vault.setAccessPolicy(env.identity.principalId, ["get"]);

    const result = await env.runApp("keyvault-secret", { KEY_VAULT_URL: vault.url, SECRET_NAME: "db-password" });

    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`credential: PodIdentityCredential (imds: ${env.imds.url}/)`);
    expect(result.stdout).toContain(`secret: db-password, version ${version}, 28 characters (value not printed)`);
    expect(result.stdout).not.toContain("correct horse");
    // The vault's only access policy is the identity's object ID: a 200 means the app presented its token.
    expect(vault.calls.map((c) => [c.method, c.path.split("?")[0], c.status])).toEqual([
      ["GET", "/secrets/db-password/", 401],
      ["GET", "/secrets/db-password/", 200],
    ]);
    expect(env.imds.counters.tokensIssued).toBe(1);
  });

  it("works the same as the first link of a ChainedTokenCredential (EXAMPLE_CREDENTIAL=chain)", async () => {
    vault.putSecret("api-key", "k".repeat(40));
    vault.setAccessPolicy(env.identity.principalId, ["get"]);

    const result = await env.runApp("keyvault-secret", { KEY_VAULT_URL: vault.url, SECRET_NAME: "api-key", EXAMPLE_CREDENTIAL: "chain" });

    expect(result.code).toBe(0);
    expect(result.stdout).toContain("credential: ChainedTokenCredential [PodIdentityCredential (imds:");
    expect(result.stdout).toContain("secret: api-key, version");
    expect(result.stdout).toContain("40 characters");
  });

  it("exits 1 with Key Vault's 403 naming the identity when it has no access policy", async () => {
    vault.putSecret("db-password", "hunter2");

    const result = await env.runApp("keyvault-secret", { KEY_VAULT_URL: vault.url, SECRET_NAME: "db-password" });

    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`error: ExampleError: Key Vault ${vault.url} refused to read secret 'db-password': HTTP 403 Forbidden`);
    expect(result.stderr).toContain(`oid=${env.identity.principalId}`);
    expect(result.stderr).toContain("does not have secrets get permission");
    expect(result.stdout + result.stderr).not.toContain("hunter2");
    expect(vault.calls.at(-1)?.status).toBe(403);
  });

  it("exits 1 naming the variable when KEY_VAULT_URL is missing", async () => {
    const result = await env.runApp("keyvault-secret", { SECRET_NAME: "db-password" });

    expect(result.code).toBe(1);
    expect(result.stderr).toContain("error: ExampleError: KEY_VAULT_URL is not set (e.g. KEY_VAULT_URL=https://my-vault.vault.azure.net)");
  });
});

describe("keyvault-secret example as a long-running Deployment (EXAMPLE_INTERVAL_SECONDS)", () => {
  let env: ExampleCloud;

  beforeEach(async () => {
    env = await ExampleCloud.start();
  });
  afterEach(async () => {
    await env.close();
  });

  it("reads again every interval with the one cached token, and exits 0 on SIGTERM", async () => {
    const vault = await env.cloud.startKeyVault("example-kv");
    vault.putSecret("db-password", "x".repeat(12));
    vault.setAccessPolicy(env.identity.principalId, ["get"]);

    const app = env.startApp("keyvault-secret", { KEY_VAULT_URL: vault.url, SECRET_NAME: "db-password", EXAMPLE_INTERVAL_SECONDS: "0.05" });
    await app.waitForOutput(/secret: db-password, version/, 3);
    app.child.kill("SIGTERM");
    const result = await app.result;

    expect(result.code).toBe(0);
    expect(vault.calls.filter((c) => c.status === 200).length).toBeGreaterThanOrEqual(3);
    // One credential per process: every round after the first is served from its cache.
    expect(env.imds.counters.tokensIssued).toBe(1);
    expect(env.imds.counters.requests).toBe(1);
  });
});
