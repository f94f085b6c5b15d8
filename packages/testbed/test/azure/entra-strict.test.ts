import { ClientCertificateCredential, ClientSecretCredential } from "@azure/identity";
import { decodeJwt } from "jose";
import type { Agent } from "undici";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AzureCloud, ManualClock, type EntraServer, type ServicePrincipal } from "../../src/index";
import { caAgent, call, trustCa, type JsonResponse } from "../helpers/azure-clients";
import { createClientCertificate } from "../helpers/client-certificate";

// Claims and tenant addressing as real Entra v1/v2 tokens have them, where a lenient emulator would let a client
// pass that misreads them on Azure.

let cloud: AzureCloud;
let entra: EntraServer;
let agent: Agent;
let app: ServicePrincipal;
let clientCert: Awaited<ReturnType<typeof createClientCertificate>>;

beforeEach(async () => {
  cloud = await AzureCloud.create({ clock: new ManualClock(Math.floor(Date.now() / 1000) * 1000), tenantDomains: ["contoso.onmicrosoft.com", "contoso.com"] });
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

function postToken(tenant: string, form: Record<string, string>): Promise<JsonResponse> {
  return call(`${entra.url}/${tenant}/oauth2/v2.0/token`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(form).toString(), dispatcher: agent });
}

describe("EntraServer token claims", () => {
  it("marks client-secret tokens appidacr 1 and certificate tokens appidacr 2 (v1 tokens, as ARM and Key Vault get)", async () => {
    const bySecret = await new ClientSecretCredential(cloud.tenantId, app.appId, "s3cret", credentialOptions()).getToken("https://management.azure.com/.default");
    expect(decodeJwt(bySecret.token)).toMatchObject({ ver: "1.0", appid: app.appId, appidacr: "1" });
    const byCertificate = await new ClientCertificateCredential(cloud.tenantId, app.appId, { certificate: clientCert.combinedPem }, credentialOptions()).getToken("https://vault.azure.net/.default");
    expect(decodeJwt(byCertificate.token)).toMatchObject({ ver: "1.0", appid: app.appId, appidacr: "2" });
  });

  it("issues v2 tokens (azp, azpacr, v2 issuer) for an app that asks for them, and they verify", async () => {
    const api = cloud.addServicePrincipal({ displayName: "api", accessTokenVersion: 2 });
    const r = await postToken(cloud.tenantId, { grant_type: "client_credentials", client_id: app.appId, client_secret: "s3cret", scope: `${api.appId}/.default` });
    expect(r.status).toBe(200);
    const claims = decodeJwt(String((r.body as { access_token: string }).access_token));
    expect(claims).toMatchObject({ ver: "2.0", azp: app.appId, azpacr: "1", iss: `https://login.microsoftonline.com/${cloud.tenantId}/v2.0`, aud: api.appId });
    expect(claims).not.toHaveProperty("appid");
    expect(claims).not.toHaveProperty("appidacr");
    await expect(cloud.tokenIssuer.verify(String((r.body as { access_token: string }).access_token), [api.appId])).resolves.toBeDefined();
  });

  it("maps each client authentication to Entra's values: none 0, secret 1, certificate 2 (v1 appidacr and v2 azpacr)", async () => {
    const base = { audience: "https://management.azure.com/", tenantId: cloud.tenantId, objectId: app.objectId, appId: app.appId };
    for (const [clientAuthentication, value] of [["none", "0"], ["secret", "1"], ["certificate", "2"]] as const) {
      expect(decodeJwt((await cloud.tokenIssuer.issue({ ...base, clientAuthentication })).token)).toMatchObject({ appidacr: value });
      expect(decodeJwt((await cloud.tokenIssuer.issue({ ...base, clientAuthentication, version: 2 })).token)).toMatchObject({ azpacr: value });
    }
    // Managed identity tokens (IMDS) carry "2", as Azure's do: the default.
    expect(decodeJwt((await cloud.tokenIssuer.issue(base)).token)).toMatchObject({ appidacr: "2" });
  });
});

describe("EntraServer tenants", () => {
  it("accepts the tenant by a verified domain as well as by ID, any case; tokens still name the tenant ID", async () => {
    for (const tenant of ["contoso.onmicrosoft.com", "Contoso.COM"]) {
      const token = await new ClientSecretCredential(tenant, app.appId, "s3cret", credentialOptions()).getToken("https://management.azure.com/.default");
      expect(decodeJwt(token.token)).toMatchObject({ tid: cloud.tenantId, iss: `https://sts.windows.net/${cloud.tenantId}/` });
    }
    const discovery = await call(`${entra.url}/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration`, { dispatcher: agent });
    expect(discovery.body).toMatchObject({ issuer: `${entra.url}/${cloud.tenantId}/v2.0` });
  });

  it("refuses a domain the tenant has not verified with AADSTS90002", async () => {
    const r = await postToken("fabrikam.onmicrosoft.com", { grant_type: "client_credentials", client_id: app.appId, client_secret: "s3cret", scope: "https://management.azure.com/.default" });
    expect([r.status, (r.body as { error_codes: number[] }).error_codes]).toEqual([400, [90002]]);
    await expect(AzureCloud.create({ tenantDomains: ["not a domain"] })).rejects.toThrow(/tenant domain "not a domain" is not a DNS name/);
  });

  it("has a default verified domain, podidentitytestbed.onmicrosoft.com", async () => {
    const plain = await AzureCloud.create();
    try {
      expect(plain.registry.tenantDomains).toEqual(["podidentitytestbed.onmicrosoft.com"]);
      expect(plain.registry.isTenant("PodIdentityTestbed.onmicrosoft.com")).toBe(true);
    } finally {
      await plain.close();
    }
  });
});
