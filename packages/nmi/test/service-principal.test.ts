import { API_GROUP_VERSION } from "@podidentity/api";
import type { EntraServer, ServicePrincipal } from "@podidentity/testbed";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Cluster, KV } from "./helpers/cluster";
import { createPkcs12 } from "./helpers/pkcs12";

let c: Cluster;
let entra: EntraServer;
const IP = "127.0.14.1";

beforeEach(async () => {
  c = await Cluster.start();
  entra = await c.cloud.startEntra();
});
afterEach(async () => c.close());

function secret(name: string, data: Record<string, Buffer | string>): void {
  const encoded = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString("base64")]));
  c.kube.seed({ apiVersion: "v1", kind: "Secret", metadata: { name, namespace: "shop" }, type: "Opaque", data: encoded });
}

function spIdentity(name: string, type: 1 | 2, sp: ServicePrincipal, secretName: string, extra: Record<string, unknown> = {}): void {
  c.kube.seed({
    apiVersion: API_GROUP_VERSION,
    kind: "AzureIdentity",
    metadata: { name, namespace: "shop" },
    spec: { type, tenantID: c.cloud.tenantId, clientID: sp.appId, clientPassword: { name: secretName, namespace: "shop" }, adEndpoint: entra.url, ...extra },
  });
  c.binding("shop", `${name}-binding`, name, "sp");
  c.pod("sp-app", IP, { namespace: "shop", label: "sp" });
  c.assigned({ name: "sp-app", namespace: "shop" }, { name, namespace: "shop" }, "Assigned");
}

const tokenCalls = (): number => entra.calls.filter((call) => call.path.endsWith("/token")).length;

describe("service principal identities (types 1 and 2) through Entra ID", () => {
  it("type 1: reads the client secret from the Secret and caches Entra's token", async () => {
    const sp = c.cloud.addServicePrincipal({ displayName: "sp-secret", secrets: ["s3cret-value"] });
    secret("sp-secret", { clientsecret: "s3cret-value" });
    spIdentity("sp-secret", 1, sp, "sp-secret");
    await c.startNmi({ entraCaPem: c.cloud.ca.certPem });
    const first = await c.token(IP);
    expect(first.status, first.text).toBe(200);
    expect(first.body).toMatchObject({ client_id: sp.appId, resource: KV, token_type: "Bearer" });
    await c.token(IP);
    expect(tokenCalls()).toBe(1);
    expect(c.imds.counters.requests).toBe(0);
  });

  it("type 2: reads a PKCS#12 certificate and its password from the Secret", async () => {
    const { certPem, pkcs12 } = createPkcs12("p12-password");
    const sp = c.cloud.addServicePrincipal({ displayName: "sp-cert", certificatePems: [certPem] });
    secret("sp-cert", { certificate: pkcs12, password: "p12-password" });
    spIdentity("sp-cert", 2, sp, "sp-cert");
    await c.startNmi({ entraCaPem: c.cloud.ca.certPem });
    const r = await c.token(IP);
    expect(r.status, r.text).toBe(200);
    expect(r.body.client_id).toBe(sp.appId);
  });

  it("multi-tenant (auxiliaryTenantIDs): a JSON array, the primary tenant's token first, as v1.8", async () => {
    const sp = c.cloud.addServicePrincipal({ displayName: "sp-multi", secrets: ["m"] });
    secret("sp-multi", { clientsecret: "m" });
    // The emulated Entra has one tenant, so the auxiliary tenant is that tenant again: the shape is what is tested.
    spIdentity("sp-multi", 1, sp, "sp-multi", { auxiliaryTenantIDs: [c.cloud.tenantId] });
    await c.startNmi({ entraCaPem: c.cloud.ca.certPem, hostTokenServicePrincipals: true });
    const r = await c.token(IP);
    expect(r.status, r.text).toBe(200);
    expect(Array.isArray(r.body)).toBe(true);
    expect(r.body).toHaveLength(2);
    for (const t of r.body) expect(t).toMatchObject({ client_id: sp.appId, resource: KV, token_type: "Bearer" });
    // /host/token (allowed here by --host-token-service-principals) answers the primary token only, as v1.8.
    const host = await c.call("127.0.0.1", `/host/token?resource=${encodeURIComponent(KV)}`, { headers: { podname: "sp-app", podns: "shop" } });
    expect(host.body.token.access_token).toBe(r.body[0].access_token);
  });

  it("/host/token refuses a service principal by default and asks Entra nothing; the pod's own token route still serves it", async () => {
    const sp = c.cloud.addServicePrincipal({ displayName: "sp-host", secrets: ["h"] });
    secret("sp-host", { clientsecret: "h" });
    spIdentity("sp-host", 1, sp, "sp-host");
    await c.startNmi({ entraCaPem: c.cloud.ca.certPem });
    const host = await c.call("127.0.0.1", `/host/token?resource=${encodeURIComponent(KV)}`, { headers: { podname: "sp-app", podns: "shop" } });
    expect(host.status, host.text).toBe(403);
    expect(host.body.error).toBe("podidentity_forbidden");
    expect(host.body.error_description).toContain("--host-token-service-principals");
    expect(host.text).not.toContain("access_token");
    expect(tokenCalls()).toBe(0);
    const own = await c.token(IP);
    expect(own.status, own.text).toBe(200);
    expect(own.body.client_id).toBe(sp.appId);
  });

  it("passes Entra's refusal of a wrong secret through, without the secret in the answer", async () => {
    const sp = c.cloud.addServicePrincipal({ displayName: "sp-wrong", secrets: ["right"] });
    secret("sp-wrong", { clientsecret: "wrong-secret-value" });
    spIdentity("sp-wrong", 1, sp, "sp-wrong");
    await c.startNmi({ entraCaPem: c.cloud.ca.certPem });
    const r = await c.token(IP);
    expect(r.status).toBe(401);
    expect(r.body.error).toBe("invalid_client");
    expect(r.body.error_description).toMatch(/^AADSTS7000215: Invalid client secret/);
    expect(r.text).not.toContain("wrong-secret-value");
  });

  it("answers podidentity_identity_invalid when the Secret is missing", async () => {
    const sp = c.cloud.addServicePrincipal({ displayName: "sp-missing", secrets: ["x"] });
    spIdentity("sp-missing", 1, sp, "does-not-exist");
    await c.startNmi({ entraCaPem: c.cloud.ca.certPem });
    const r = await c.token(IP);
    expect(r.status).toBe(500);
    expect(r.body.error).toBe("podidentity_identity_invalid");
    expect(r.body.error_description).toMatch(/shop\/does-not-exist/);
  });

  it("503 podidentity_upstream_unavailable when Entra cannot be reached", async () => {
    const sp = c.cloud.addServicePrincipal({ displayName: "sp-down", secrets: ["s"] });
    secret("sp-down", { clientsecret: "s" });
    spIdentity("sp-down", 1, sp, "sp-down");
    await entra.close();
    await c.startNmi({ entraCaPem: c.cloud.ca.certPem });
    const r = await c.token(IP);
    expect(r.status).toBe(503);
    expect(r.body.error).toBe("podidentity_upstream_unavailable");
  });
});
