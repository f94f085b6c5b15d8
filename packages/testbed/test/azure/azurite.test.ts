import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createLocalJWKSet, jwtVerify } from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AzureCloud, type AzuriteBlob } from "../../src/index";
import { call } from "../helpers/azure-clients";

const execFileAsync = promisify(execFile);
const SCRIPT = join(import.meta.dirname, "..", "fixtures", "blob-roundtrip.mjs");

let cloud: AzureCloud;
let azurite: AzuriteBlob;
let caDir: string;
let caFile: string;

beforeEach(async () => {
  cloud = await AzureCloud.create();
  azurite = await cloud.startAzurite();
  caDir = await mkdtemp(join(tmpdir(), "testbed-ca-"));
  caFile = await cloud.ca.writeCaFile(caDir);
}, 60_000);

afterEach(async () => {
  await cloud.close();
  await rm(caDir, { recursive: true, force: true });
});

async function roundtrip(token: string, container: string): Promise<{ ok: boolean; text?: string; statusCode?: number }> {
  const { stdout } = await execFileAsync(process.execPath, [SCRIPT], {
    env: { PATH: process.env["PATH"] ?? "", NODE_EXTRA_CA_CERTS: caFile, ACCOUNT_URL: azurite.accountUrl, TOKEN: token, CONTAINER: container },
    timeout: 30_000,
  });
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as { ok: boolean; text?: string; statusCode?: number };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("AzuriteBlob", () => {
  it("stores and reads a blob with an IMDS-issued token that verifies against the emulator's JWKS", async () => {
    const vmss = cloud.addScaleSet("vmss");
    const id = cloud.createUserAssignedIdentity("blob-writer");
    vmss.applyIdentityPatch({ type: "UserAssigned", userAssignedIdentities: { [id.id]: {} } }, cloud.registry, { effectiveAtMs: 0 });
    const imds = await cloud.startImds("node-0", vmss);
    const r = await call(`${imds.url}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fstorage.azure.com%2F`, { headers: { metadata: "true" } });
    const token = (r.body as { access_token: string }).access_token;

    expect(await roundtrip(token, `c${Date.now()}`)).toEqual({ ok: true, text: "hi from pod" });
    // Azurite only decodes the token; prove it came from our issuer.
    const { payload } = await jwtVerify(token, createLocalJWKSet(cloud.tokenIssuer.jwks()), { audience: "https://storage.azure.com/" });
    expect(payload).toMatchObject({ appid: id.clientId, oid: id.principalId });
  }, 60_000);

  it("is refused a token for another audience, and its process stops on close", async () => {
    const { token } = await cloud.tokenIssuer.issue({ audience: "https://vault.azure.net", tenantId: cloud.tenantId, objectId: "o", appId: "a" });
    expect(await roundtrip(token, "denied")).toMatchObject({ ok: false, statusCode: 403 });
    expect(processAlive(azurite.pid)).toBe(true);
    await cloud.close();
    expect(processAlive(azurite.pid)).toBe(false);
  }, 60_000);
});
