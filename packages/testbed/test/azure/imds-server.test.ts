import { ManagedIdentityCredential } from "@azure/identity";
import { createLocalJWKSet, jwtVerify } from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AzureCloud, ManualClock, type ComputeResource, type ImdsServer, type UserAssignedIdentity } from "../../src/index";
import { armToken, caAgent, call, type JsonResponse } from "../helpers/azure-clients";

const VAULT = "https://vault.azure.net";
let clock: ManualClock;
let cloud: AzureCloud;
let vmss: ComputeResource;
let imds: ImdsServer;

beforeEach(async () => {
  clock = new ManualClock(Math.floor(Date.now() / 1000) * 1000);
  cloud = await AzureCloud.create({ clock });
  vmss = cloud.addScaleSet("aks-nodepool1-vmss");
  imds = await cloud.startImds("aks-nodepool1-vmss000000", vmss);
});

afterEach(async () => {
  await cloud.close();
});

function token(query: string, headers: Record<string, string> = { metadata: "true" }): Promise<JsonResponse> {
  return call(`${imds.url}/metadata/identity/oauth2/token?api-version=2018-02-01&${query}`, { headers });
}

/** Assigns directly on the model with an already-propagated effective time. */
function assign(resource: ComputeResource, identities: UserAssignedIdentity[], type = "UserAssigned"): void {
  resource.applyIdentityPatch({ type, userAssignedIdentities: Object.fromEntries(identities.map((i) => [i.id, {}])) }, cloud.registry, { effectiveAtMs: clock.now() });
}

const describeError = (r: JsonResponse): unknown => [r.status, (r.body as { error?: string }).error, (r.body as { error_description?: string }).error_description];

describe("ImdsServer token endpoint", () => {
  it("issues tokens only for identities assigned through ARM, after the propagation delay", async () => {
    const arm = await cloud.startArm({ operationDurationMs: 20_000, propagationDelayMs: 10_000 });
    const agent = caAgent(cloud.ca.certPem);
    const id = cloud.createUserAssignedIdentity("pod-id");
    expect(describeError(await token(`resource=${VAULT}&client_id=${id.clientId}`))).toEqual([400, "invalid_request", "Identity not found"]);

    const patched = await call(`${arm.url}${vmss.id}?api-version=2022-03-01`, {
      method: "PATCH",
      headers: { authorization: `Bearer ${await armToken(cloud)}`, "content-type": "application/json" },
      body: JSON.stringify({ identity: { type: "UserAssigned", userAssignedIdentities: { [id.id]: {} } } }),
      dispatcher: agent,
    });
    expect(patched.status).toBe(200);
    await agent.close();
    clock.advance(29_999);
    expect((await token(`resource=${VAULT}&client_id=${id.clientId}`)).status).toBe(400);
    clock.advance(1);
    const ok = await token(`resource=${VAULT}&client_id=${id.clientId}`);
    expect(ok.status).toBe(200);

    const body = ok.body as Record<string, unknown>;
    for (const field of ["access_token", "expires_in", "expires_on", "not_before", "resource", "token_type", "client_id"]) {
      expect(typeof body[field], field).toBe("string");
    }
    expect(body).toMatchObject({ resource: VAULT, token_type: "Bearer", client_id: id.clientId, expires_in: "86400" });
    const { payload } = await jwtVerify(String(body["access_token"]), createLocalJWKSet(cloud.tokenIssuer.jwks()), { currentDate: new Date(clock.now()) });
    expect(payload).toMatchObject({ aud: VAULT, iss: `https://sts.windows.net/${cloud.tenantId}/`, tid: cloud.tenantId, oid: id.principalId, appid: id.clientId });
    expect(Number(body["expires_on"])).toBe(payload.exp);
  });

  it("serves @azure/identity ManagedIdentityCredential through AZURE_POD_IDENTITY_AUTHORITY_HOST", async () => {
    const id = cloud.createUserAssignedIdentity("sdk-id");
    assign(vmss, [id]);
    const previous = process.env["AZURE_POD_IDENTITY_AUTHORITY_HOST"];
    process.env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = imds.url;
    try {
      const credential = new ManagedIdentityCredential({ clientId: id.clientId });
      const accessToken = await credential.getToken("https://storage.azure.com/.default");
      const { payload } = await jwtVerify(accessToken.token, createLocalJWKSet(cloud.tokenIssuer.jwks()), { currentDate: new Date(clock.now()) });
      expect(payload).toMatchObject({ aud: "https://storage.azure.com", appid: id.clientId });
      expect(imds.counters.tokensIssued).toBe(1);
    } finally {
      if (previous === undefined) delete process.env["AZURE_POD_IDENTITY_AUTHORITY_HOST"];
      else process.env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = previous;
    }
  });

  it("selects by client_id, object_id, msi_res_id and mi_res_id; refuses identities of other VMs", async () => {
    const a = cloud.createUserAssignedIdentity("id-a");
    const b = cloud.createUserAssignedIdentity("id-b");
    const elsewhere = cloud.createUserAssignedIdentity("id-elsewhere");
    assign(vmss, [a, b]);
    assign(cloud.addVirtualMachine("other-vm"), [elsewhere]);
    const clientOf = async (q: string): Promise<unknown> => ((await token(`resource=${VAULT}&${q}`)).body as { client_id?: string }).client_id;
    expect(await clientOf(`client_id=${a.clientId.toUpperCase()}`)).toBe(a.clientId);
    expect(await clientOf(`object_id=${b.principalId}`)).toBe(b.clientId);
    expect(await clientOf(`msi_res_id=${encodeURIComponent(a.id)}`)).toBe(a.clientId);
    expect(await clientOf(`mi_res_id=${encodeURIComponent(b.id)}`)).toBe(b.clientId);
    expect(describeError(await token(`resource=${VAULT}&client_id=${elsewhere.clientId}`))).toEqual([400, "invalid_request", "Identity not found"]);
    expect((await token(`resource=${VAULT}&client_id=${a.clientId}&object_id=${a.principalId}`)).status).toBe(400);
  });

  it("without a selector: the system identity, else the only user identity, else 400", async () => {
    expect(describeError(await token(`resource=${VAULT}`))).toEqual([400, "invalid_request", "Identity not found"]);
    const a = cloud.createUserAssignedIdentity("id-a");
    assign(vmss, [a]);
    expect(((await token(`resource=${VAULT}`)).body as { client_id: string }).client_id).toBe(a.clientId);
    const b = cloud.createUserAssignedIdentity("id-b");
    assign(vmss, [b]);
    const multiple = await token(`resource=${VAULT}`);
    expect(multiple.status).toBe(400);
    expect((multiple.body as { error_description: string }).error_description).toContain("Multiple user assigned identities exist");
    assign(vmss, [], "SystemAssigned, UserAssigned");
    const system = await token(`resource=${VAULT}`);
    expect((system.body as { client_id: string }).client_id).toBe(vmss.systemAssigned?.clientId);
    const { payload } = await jwtVerify(String((system.body as { access_token: string }).access_token), createLocalJWKSet(cloud.tokenIssuer.jwks()), { currentDate: new Date(clock.now()) });
    expect(payload["oid"]).toBe(vmss.systemAssigned?.principalId);
  });

  it("refuses an identity that was deleted and re-created after assignment", async () => {
    const original = cloud.createUserAssignedIdentity("recreated");
    assign(vmss, [original]);
    cloud.deleteUserAssignedIdentity(original);
    const recreated = cloud.createUserAssignedIdentity("recreated");
    expect((await token(`resource=${VAULT}&msi_res_id=${encodeURIComponent(original.id)}`)).status).toBe(400);
    expect((await token(`resource=${VAULT}&client_id=${recreated.clientId}`)).status).toBe(400);
    expect((await token(`resource=${VAULT}&client_id=${original.clientId}`)).status).toBe(400);
  });

  it("answers malformed requests with IMDS errors", async () => {
    const id = cloud.createUserAssignedIdentity("id-a");
    assign(vmss, [id]);
    expect(describeError(await token(`resource=${VAULT}`, {}))).toEqual([400, "bad_request_102", "Required metadata header not specified"]);
    expect((await token(`resource=${VAULT}`, { metadata: "false" })).status).toBe(400);
    expect((await token(`resource=${VAULT}`, { metadata: "true", "x-forwarded-for": "10.0.0.1" })).status).toBe(400);
    expect(describeError(await token(""))).toEqual([400, "invalid_request", "Required query variable 'resource' is missing"]);
    const noVersion = await call(`${imds.url}/metadata/identity/oauth2/token?resource=${VAULT}`, { headers: { metadata: "true" } });
    expect(describeError(noVersion)).toEqual([400, "invalid_request", "Required query variable 'api-version' is missing"]);
    const unknownResource = await token("resource=https://nothing.example");
    expect([unknownResource.status, (unknownResource.body as { error: string }).error]).toEqual([400, "invalid_resource"]);
    expect((await call(`${imds.url}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=${VAULT}`, { method: "POST", headers: { metadata: "true" } })).status).toBe(405);
    expect((await call(`${imds.url}/doesnotexist`, { headers: { metadata: "true" } })).status).toBe(404);
    expect(imds.counters.byStatus[400]).toBe(6);
    expect(imds.counters.byStatus[405]).toBe(1);
  });

  it("answers 410 while updating, then recovers on the clock", async () => {
    const id = cloud.createUserAssignedIdentity("id-a");
    assign(vmss, [id]);
    imds.setUpdating(70_000);
    expect((await token(`resource=${VAULT}`)).status).toBe(410);
    clock.advance(70_000);
    expect((await token(`resource=${VAULT}`)).status).toBe(200);
  });

  it("hands out its cached token until 5 minutes before expiry", async () => {
    const id = cloud.createUserAssignedIdentity("id-a");
    assign(vmss, [id]);
    const first = (await token(`resource=${VAULT}`)).body as { access_token: string; expires_in: string };
    clock.advance(60_000);
    const second = (await token(`resource=${VAULT}`)).body as { access_token: string; expires_in: string };
    expect(second.access_token).toBe(first.access_token);
    expect(second.expires_in).toBe("86340");
    clock.advance(24 * 60 * 60 * 1000 - 60_000 - 5 * 60 * 1000);
    expect(((await token(`resource=${VAULT}`)).body as { access_token: string }).access_token).not.toBe(first.access_token);
  });
});

describe("ImdsServer limits", () => {
  it("allows 20 token requests per second per node, then 429 until the bucket refills", async () => {
    const id = cloud.createUserAssignedIdentity("id-a");
    assign(vmss, [id]);
    for (let i = 0; i < 20; i++) expect((await token(`resource=${VAULT}`)).status).toBe(200);
    expect((await token(`resource=${VAULT}`)).status).toBe(429);
    expect(imds.counters.throttled).toBe(1);
    clock.advance(50);
    expect((await token(`resource=${VAULT}`)).status).toBe(200);
    expect((await token(`resource=${VAULT}`)).status).toBe(429);
  });

  it("allows 5 concurrent token requests per node", async () => {
    await imds.close();
    const gate: Array<() => void> = [];
    const entered: Array<() => void> = [];
    let started = 0;
    imds = await cloud.startImds("node-b", vmss, {
      latencyMs: 1,
      sleep: () =>
        new Promise<void>((resolve) => {
          gate.push(resolve);
          started++;
          entered.shift()?.();
        }),
    });
    const id = cloud.createUserAssignedIdentity("id-a");
    assign(vmss, [id]);
    const waitStarted = (n: number): Promise<void> =>
      started >= n ? Promise.resolve() : new Promise<void>((resolve) => entered.push(() => (started >= n ? resolve() : void waitStarted(n).then(resolve))));
    const held = Array.from({ length: 5 }, () => token(`resource=${VAULT}`));
    await waitStarted(5);
    expect((await token(`resource=${VAULT}`)).status).toBe(429);
    gate.forEach((release) => release());
    expect((await Promise.all(held)).map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
  });
});

describe("ImdsServer instance metadata", () => {
  it("returns compute metadata with the Metadata header and a supported api-version", async () => {
    const r = await call(`${imds.url}/metadata/instance?api-version=2021-02-01`, { headers: { metadata: "true" } });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ compute: { name: "aks-nodepool1-vmss000000", vmScaleSetName: "aks-nodepool1-vmss", subscriptionId: cloud.subscriptionId, resourceGroupName: cloud.resourceGroup, location: "eastus" } });
    const compute = await call(`${imds.url}/metadata/instance/compute?api-version=2021-02-01`, { headers: { metadata: "true" } });
    expect(compute.body).toMatchObject({ vmId: vmss.vmId });
    expect((await call(`${imds.url}/metadata/instance?api-version=2021-02-01`)).status).toBe(400);
    const noVersion = await call(`${imds.url}/metadata/instance`, { headers: { metadata: "true" } });
    expect(noVersion.status).toBe(400);
    expect(noVersion.body).toHaveProperty("newest-versions");
  });
});
