import { ClientSecretCredential } from "@azure/identity";
import { SecretClient } from "@azure/keyvault-secrets";
import type { Agent } from "undici";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AzureCloud, ManualClock, TokenIssuer, type KeyVaultServer, type ServicePrincipal } from "../../src/index";
import { caAgent, call, trustCa, type JsonResponse } from "../helpers/azure-clients";

let clock: ManualClock;
let cloud: AzureCloud;
let vault: KeyVaultServer;
let app: ServicePrincipal;
let agent: Agent;

beforeEach(async () => {
  clock = new ManualClock(Date.now());
  cloud = await AzureCloud.create({ clock });
  vault = await cloud.startKeyVault("testbed-kv");
  app = cloud.addServicePrincipal({ secrets: ["s3cret"] });
  agent = caAgent(cloud.ca.certPem);
});

afterEach(async () => {
  await agent.close();
  await cloud.close();
});

async function secretClient(): Promise<SecretClient> {
  const entra = await cloud.startEntra();
  const credential = new ClientSecretCredential(cloud.tenantId, app.appId, "s3cret", {
    authorityHost: entra.url,
    disableInstanceDiscovery: true,
    additionalPolicies: [trustCa(cloud.ca.certPem)],
  });
  // The vault lives on 127.0.0.1, not *.vault.azure.net, so the challenge's resource check is off.
  return new SecretClient(vault.url, credential, { disableChallengeResourceVerification: true, additionalPolicies: [trustCa(cloud.ca.certPem)] });
}

async function vaultToken(options: { audience?: string; objectId?: string; tenantId?: string } = {}): Promise<string> {
  const { token } = await cloud.tokenIssuer.issue({
    audience: options.audience ?? "https://vault.azure.net",
    tenantId: options.tenantId ?? cloud.tenantId,
    objectId: options.objectId ?? app.objectId,
    appId: app.appId,
  });
  return token;
}

function kv(path: string, options: { method?: "GET" | "PUT" | "DELETE" | "POST"; token?: string; body?: string } = {}): Promise<JsonResponse> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (options.token) headers["authorization"] = `Bearer ${options.token}`;
  return call(`${vault.url}${path}`, { method: options.method ?? "GET", headers, body: options.body, dispatcher: agent });
}

const kvError = (r: JsonResponse): [number, unknown] => [r.status, (r.body as { error?: { code?: string } }).error?.code];

describe("KeyVaultServer with SecretClient", () => {
  it("sets, gets and lists secrets after the bearer challenge, for an object ID with access", async () => {
    vault.setAccessPolicy(app.objectId, ["get", "list", "set"]);
    const client = await secretClient();
    const set = await client.setSecret("db-password", "hunter2", { contentType: "text/plain", tags: { env: "test" } });
    expect(set.value).toBe("hunter2");
    const got = await client.getSecret("db-password");
    expect(got).toMatchObject({ value: "hunter2", name: "db-password", properties: { contentType: "text/plain", tags: { env: "test" }, version: set.properties.version } });
    await client.setSecret("db-password", "hunter3");
    expect((await client.getSecret("db-password")).value).toBe("hunter3");
    expect((await client.getSecret("db-password", { version: set.properties.version })).value).toBe("hunter2");
    const names: string[] = [];
    for await (const props of client.listPropertiesOfSecrets()) names.push(props.name);
    expect(names).toEqual(["db-password"]);
    // The first request of each kind went out without a token and got the challenge.
    expect(vault.calls.filter((c) => c.status === 401).length).toBeGreaterThanOrEqual(1);
  });

  it("refuses an object ID without the permission with 403 Forbidden", async () => {
    vault.setAccessPolicy(app.objectId, ["set"]);
    vault.putSecret("seeded", "v");
    const client = await secretClient();
    const error = await client.getSecret("seeded").catch((e: unknown) => e);
    expect(error).toMatchObject({ statusCode: 403, code: "Forbidden" });
    expect((error as Error).message).toContain(`does not have secrets get permission on key vault 'testbed-kv;location=eastus'`);
  });
});

describe("KeyVaultServer authentication", () => {
  it("challenges a request without a token exactly as Key Vault does", async () => {
    const r = await kv("/secrets/x?api-version=7.6");
    expect(kvError(r)).toEqual([401, "Unauthorized"]);
    expect(r.headers["www-authenticate"]).toBe(`Bearer authorization="https://login.microsoftonline.com/${cloud.tenantId}", resource="https://vault.azure.net"`);
  });

  it("refuses tokens for another audience, another tenant, forged or expired ones", async () => {
    vault.setAccessPolicy(app.objectId, ["get"]);
    vault.putSecret("x", "v");
    expect((await kv("/secrets/x?api-version=7.6", { token: await vaultToken() })).status).toBe(200);
    expect(kvError(await kv("/secrets/x?api-version=7.6", { token: await vaultToken({ audience: "https://storage.azure.com" }) }))).toEqual([401, "Unauthorized"]);
    const foreign = await kv("/secrets/x?api-version=7.6", { token: await vaultToken({ tenantId: "72f988bf-86f1-41af-91ab-2d7cd011db47" }) });
    expect(kvError(foreign)).toEqual([401, "Unauthorized"]);
    const otherIssuer = await TokenIssuer.create({ clock });
    const forged = (await otherIssuer.issue({ audience: "https://vault.azure.net", tenantId: cloud.tenantId, objectId: app.objectId, appId: app.appId })).token;
    expect(kvError(await kv("/secrets/x?api-version=7.6", { token: forged }))).toEqual([401, "Unauthorized"]);
    const token = await vaultToken();
    clock.advance(25 * 60 * 60 * 1000);
    expect(kvError(await kv("/secrets/x?api-version=7.6", { token }))).toEqual([401, "Unauthorized"]);
  });
});

describe("KeyVaultServer bad input", () => {
  it("answers malformed requests with Key Vault's error shape", async () => {
    vault.setAccessPolicy(app.objectId, ["get", "set", "list"]);
    const token = await vaultToken();
    expect(kvError(await kv("/secrets/x", { token }))).toEqual([400, "BadParameter"]);
    expect(kvError(await kv("/secrets/x?api-version=banana", { token }))).toEqual([400, "BadParameter"]);
    expect(kvError(await kv("/secrets/missing?api-version=7.6", { token }))).toEqual([404, "SecretNotFound"]);
    expect(kvError(await kv("/secrets/missing/0123?api-version=7.6", { token }))).toEqual([404, "SecretNotFound"]);
    expect(kvError(await kv("/keys/k?api-version=7.6", { token }))).toEqual([404, "NotFound"]);
    expect(kvError(await kv("/secrets/bad_name?api-version=7.6", { token }))).toEqual([400, "BadParameter"]);
    expect(kvError(await kv("/secrets/x?api-version=7.6", { method: "PUT", token, body: "{oops" }))).toEqual([400, "BadParameter"]);
    expect(kvError(await kv("/secrets/x?api-version=7.6", { method: "PUT", token, body: JSON.stringify({ value: 42 }) }))).toEqual([400, "BadParameter"]);
    expect(kvError(await kv("/secrets/x?api-version=7.6", { method: "PUT", token, body: JSON.stringify({ value: "a".repeat(30 * 1024) }) }))).toEqual([400, "BadParameter"]);
    expect(kvError(await kv("/secrets/x?api-version=7.6", { method: "PUT", token, body: JSON.stringify({ value: "a".repeat(100 * 1024) }) }))).toEqual([413, "RequestEntityTooLarge"]);
    expect(kvError(await kv("/secrets/x?api-version=7.6", { method: "POST", token, body: "{}" }))).toEqual([405, "MethodNotAllowed"]);
    const ok = await kv("/secrets/x?api-version=7.6", { method: "PUT", token, body: JSON.stringify({ value: "v" }) });
    expect(ok.status).toBe(200);
    expect((ok.body as { id: string }).id).toMatch(new RegExp(`^${vault.url}/secrets/x/[0-9a-f]{32}$`));
    expect((await kv("/secrets/x/?api-version=7.6", { token })).body).toMatchObject({ value: "v" });
  });
});

describe("Key Vault access policies through ARM", () => {
  it("grants, extends and revokes secret permissions with accessPolicies/{add,replace,remove}", async () => {
    const arm = await cloud.startArm();
    const armToken = (await cloud.tokenIssuer.issue({ audience: "https://management.azure.com/", tenantId: cloud.tenantId, objectId: "admin", appId: "admin" })).token;
    const path = (kind: string): string =>
      `${arm.url}/subscriptions/${cloud.subscriptionId}/resourceGroups/${cloud.resourceGroup}/providers/Microsoft.KeyVault/vaults/testbed-kv/accessPolicies/${kind}?api-version=2022-07-01`;
    const put = (kind: string, secrets: string[], objectId = app.objectId): Promise<JsonResponse> =>
      call(path(kind), {
        method: "PUT",
        headers: { authorization: `Bearer ${armToken}`, "content-type": "application/json" },
        body: JSON.stringify({ properties: { accessPolicies: [{ tenantId: cloud.tenantId, objectId, permissions: { secrets } }] } }),
        dispatcher: agent,
      });
    vault.putSecret("s", "v");
    const token = await vaultToken();
    expect((await kv("/secrets/s?api-version=7.6", { token })).status).toBe(403);

    const added = await put("add", ["get"]);
    expect(added.status).toBe(200);
    expect(added.body).toMatchObject({ properties: { accessPolicies: [{ objectId: app.objectId, permissions: { secrets: ["get"] } }] } });
    expect((await kv("/secrets/s?api-version=7.6", { token })).status).toBe(200);
    expect((await kv("/secrets?api-version=7.6", { token })).status).toBe(403);

    await put("add", ["list"]);
    expect(vault.accessPolicy(app.objectId).sort()).toEqual(["get", "list"]);
    await put("replace", ["all"]);
    expect(vault.accessPolicy(app.objectId).sort()).toEqual(["get", "list", "set"]);
    await put("remove", ["get"]);
    expect((await kv("/secrets/s?api-version=7.6", { token })).status).toBe(403);

    expect((await put("merge", ["get"])).status).toBe(400);
    expect((await put("add", ["fly"])).status).toBe(400);
    const unknownVault = await call(path("add").replace("testbed-kv", "nope-kv"), { method: "PUT", headers: { authorization: `Bearer ${armToken}` }, body: "{}", dispatcher: agent });
    expect(unknownVault.status).toBe(404);
  });
});
