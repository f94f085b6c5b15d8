import { AuthenticationRequiredError, ClientCertificateCredential, ClientSecretCredential } from "@azure/identity";
import { SignJWT, createLocalJWKSet, importPKCS8, jwtVerify } from "jose";
import { createHash, X509Certificate } from "node:crypto";
import type { Agent } from "undici";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AzureCloud, ManualClock, type EntraServer, type ServicePrincipal } from "../../src/index";
import { caAgent, call, trustCa, type JsonResponse } from "../helpers/azure-clients";
import { createClientCertificate } from "../helpers/client-certificate";

let clock: ManualClock;
let cloud: AzureCloud;
let entra: EntraServer;
let agent: Agent;
let app: ServicePrincipal;
let clientCert: Awaited<ReturnType<typeof createClientCertificate>>;

beforeEach(async () => {
  clock = new ManualClock(Math.floor(Date.now() / 1000) * 1000);
  cloud = await AzureCloud.create({ clock });
  entra = await cloud.startEntra();
  agent = caAgent(cloud.ca.certPem);
  clientCert = await createClientCertificate();
  app = cloud.addServicePrincipal({ displayName: "mic", secrets: ["s3cret"], certificatePems: [clientCert.certPem] });
});

afterEach(async () => {
  await agent.close();
  await cloud.close();
});

const credentialOptions = () => ({ authorityHost: entra.url, disableInstanceDiscovery: true, additionalPolicies: [trustCa(cloud.ca.certPem)] });

async function verify(token: string, audience: string): Promise<Record<string, unknown>> {
  const { payload } = await jwtVerify(token, createLocalJWKSet(cloud.tokenIssuer.jwks()), { audience, currentDate: new Date(clock.now()) });
  return payload;
}

function postToken(form: Record<string, string>, path = `/${cloud.tenantId}/oauth2/v2.0/token`): Promise<JsonResponse> {
  return call(`${entra.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form).toString(),
    dispatcher: agent,
  });
}

function aadsts(r: JsonResponse): [number, string, number[] | undefined] {
  const body = r.body as { error: string; error_codes?: number[] };
  return [r.status, body.error, body.error_codes];
}

describe("EntraServer with @azure/identity", () => {
  it("issues a token to ClientSecretCredential that verifies against the JWKS", async () => {
    const credential = new ClientSecretCredential(cloud.tenantId, app.appId, "s3cret", credentialOptions());
    const token = await credential.getToken("https://management.azure.com/.default");
    expect(await verify(token.token, "https://management.azure.com")).toMatchObject({
      iss: `https://sts.windows.net/${cloud.tenantId}/`,
      tid: cloud.tenantId,
      oid: app.objectId,
      appid: app.appId,
    });
    expect(entra.calls.some((c) => c.path === `/${cloud.tenantId}/v2.0/.well-known/openid-configuration`)).toBe(true);
  });

  it("refuses a wrong secret with 401 invalid_client AADSTS7000215", async () => {
    const credential = new ClientSecretCredential(cloud.tenantId, app.appId, "wrong", credentialOptions());
    const error = await credential.getToken("https://vault.azure.net/.default").catch((e: unknown) => e);
    // @azure/identity wraps MSAL's ServerError (which carries Entra's answer) in AuthenticationRequiredError.
    expect(error).toBeInstanceOf(AuthenticationRequiredError);
    expect((error as { cause?: { errorCode?: string } }).cause?.errorCode).toBe("invalid_client");
    expect((error as Error).message).toContain("AADSTS7000215");
  });

  it("issues a token to ClientCertificateCredential (PS256 + x5t#S256 assertion)", async () => {
    const credential = new ClientCertificateCredential(cloud.tenantId, app.appId, { certificate: clientCert.combinedPem }, credentialOptions());
    const token = await credential.getToken("https://vault.azure.net/.default");
    expect(await verify(token.token, "https://vault.azure.net")).toMatchObject({ appid: app.appId, oid: app.objectId });
  });

  it("refuses a certificate that is not registered on the app", async () => {
    const stranger = await createClientCertificate("stranger");
    const credential = new ClientCertificateCredential(cloud.tenantId, app.appId, { certificate: stranger.combinedPem }, credentialOptions());
    const error = await credential.getToken("https://vault.azure.net/.default").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthenticationRequiredError);
    expect((error as { cause?: { errorCode?: string } }).cause?.errorCode).toBe("invalid_client");
    expect((error as Error).message).toContain("AADSTS700027");
  });
});

describe("EntraServer client assertions", () => {
  const endpoint = (): string => `${entra.url}/${cloud.tenantId}/oauth2/v2.0/token`;
  async function assertion(claims: { aud?: string; exp?: number; iss?: string }, keyPem = clientCert.keyPem, certPem = clientCert.certPem): Promise<string> {
    const now = Math.floor(clock.now() / 1000);
    const x5t = createHash("sha1").update(new X509Certificate(certPem).raw).digest("base64url");
    return new SignJWT({ jti: "1" })
      .setProtectedHeader({ alg: "RS256", x5t })
      .setAudience(claims.aud ?? endpoint())
      .setIssuer(claims.iss ?? app.appId)
      .setSubject(claims.iss ?? app.appId)
      .setNotBefore(now)
      .setExpirationTime(claims.exp ?? now + 600)
      .sign(await importPKCS8(keyPem, "RS256"));
  }
  const form = (clientAssertion: string): Record<string, string> => ({
    grant_type: "client_credentials",
    client_id: app.appId,
    scope: "https://vault.azure.net/.default",
    client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    client_assertion: clientAssertion,
  });

  it("accepts an RS256 assertion with x5t and checks audience, subject and time", async () => {
    expect((await postToken(form(await assertion({})))).status).toBe(200);
    expect(aadsts(await postToken(form(await assertion({ aud: "https://elsewhere.example/token" }))))).toEqual([401, "invalid_client", [700027]]);
    expect(aadsts(await postToken(form(await assertion({ iss: "someone-else" }))))).toEqual([401, "invalid_client", [700027]]);
    const expired = await assertion({ exp: Math.floor(clock.now() / 1000) + 60 });
    clock.advance(10 * 60 * 1000);
    expect(aadsts(await postToken(form(expired)))).toEqual([401, "invalid_client", [700024]]);
  });

  it("refuses an assertion whose signature does not match the registered certificate", async () => {
    const other = await createClientCertificate("other");
    // Signed by another key but claiming the registered certificate's thumbprint.
    expect(aadsts(await postToken(form(await assertion({}, other.keyPem, clientCert.certPem))))).toEqual([401, "invalid_client", [700027]]);
  });
});

describe("EntraServer protocol surface", () => {
  it("serves v1 tokens with string fields, OIDC metadata, instance discovery and keys", async () => {
    const v1 = await postToken({ grant_type: "client_credentials", client_id: app.appId, client_secret: "s3cret", resource: "https://management.core.windows.net/" }, `/${cloud.tenantId}/oauth2/token`);
    expect(v1.status).toBe(200);
    const body = v1.body as Record<string, unknown>;
    expect(body).toMatchObject({ token_type: "Bearer", resource: "https://management.core.windows.net/", expires_in: "3600" });
    expect(typeof body["expires_on"]).toBe("string");

    const oidc = await call(`${entra.url}/${cloud.tenantId}/v2.0/.well-known/openid-configuration`, { dispatcher: agent });
    expect(oidc.body).toMatchObject({ token_endpoint: `${entra.url}/${cloud.tenantId}/oauth2/v2.0/token`, jwks_uri: `${entra.url}/${cloud.tenantId}/discovery/v2.0/keys` });
    const keys = await call(`${entra.url}/${cloud.tenantId}/discovery/v2.0/keys`, { dispatcher: agent });
    expect((keys.body as { keys: Array<{ kid: string }> }).keys[0]?.kid).toBe(cloud.tokenIssuer.kid);
    const discovery = await call(`${entra.url}/common/discovery/instance?api-version=1.1&authorization_endpoint=${entra.url}/common/oauth2/v2.0/authorize`, { dispatcher: agent });
    expect(discovery.body).toMatchObject({ "api-version": "1.1", tenant_discovery_endpoint: `${entra.url}/{tenant}/v2.0/.well-known/openid-configuration` });
  });

  it("answers bad requests with Entra's error shape and AADSTS codes", async () => {
    const base = { grant_type: "client_credentials", client_id: app.appId, client_secret: "s3cret", scope: "https://vault.azure.net/.default" };
    const wrong = await postToken({ ...base, client_secret: "nope" });
    expect(aadsts(wrong)).toEqual([401, "invalid_client", [7000215]]);
    const wrongBody = wrong.body as Record<string, string>;
    expect(wrongBody["error_description"]).toMatch(/^AADSTS7000215: Invalid client secret provided\..*\r\nTrace ID: [0-9a-f-]+\r\nCorrelation ID: [0-9a-f-]+\r\nTimestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/s);
    expect(wrongBody).toHaveProperty("trace_id");
    expect(wrongBody).toHaveProperty("correlation_id");
    expect(aadsts(await postToken({ ...base, grant_type: "" }))).toEqual([400, "invalid_request", [900144]]);
    expect(aadsts(await postToken({ ...base, grant_type: "password" }))).toEqual([400, "unsupported_grant_type", [70003]]);
    expect(aadsts(await postToken({ ...base, scope: "https://vault.azure.net/user.read" }))).toEqual([400, "invalid_scope", [1002012]]);
    expect(aadsts(await postToken({ ...base, scope: "https://nowhere.example/.default" }))).toEqual([400, "invalid_resource", [500011]]);
    expect(aadsts(await postToken({ ...base, client_id: "11111111-1111-1111-1111-111111111111" }))).toEqual([400, "unauthorized_client", [700016]]);
    const { client_secret: _unused, ...noSecret } = base;
    expect(aadsts(await postToken(noSecret))).toEqual([401, "invalid_client", [7000218]]);
    expect(aadsts(await postToken(base, "/00000000-0000-0000-0000-000000000000/oauth2/v2.0/token"))).toEqual([400, "invalid_request", [90002]]);
    const json = await call(`${entra.url}/${cloud.tenantId}/oauth2/v2.0/token`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(base), dispatcher: agent });
    expect(aadsts(json)).toEqual([400, "invalid_request", [900144]]);
    const get = await call(`${entra.url}/${cloud.tenantId}/oauth2/v2.0/token`, { dispatcher: agent });
    expect(get.status).toBe(405);
    const huge = await call(`${entra.url}/${cloud.tenantId}/oauth2/v2.0/token`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "a=" + "b".repeat(100_000), dispatcher: agent });
    expect(huge.status).toBe(413);
    expect((await call(`${entra.url}/nothing/here`, { dispatcher: agent })).status).toBe(404);
  });
});
