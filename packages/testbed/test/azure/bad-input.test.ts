import { connect } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AzureCloud } from "../../src/index";
import { armToken, caAgent, call } from "../helpers/azure-clients";

let cloud: AzureCloud;

beforeEach(async () => {
  cloud = await AzureCloud.create();
});

afterEach(async () => {
  await cloud.close();
});

/** Sends raw bytes that are not HTTP and returns what the server answered. */
function rawExchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.end(bytes));
    let answer = "";
    socket.on("data", (chunk) => (answer += chunk.toString()));
    socket.on("close", () => resolve(answer));
    socket.on("error", reject);
  });
}

describe("bad input never brings an emulator down", () => {
  it("IMDS answers garbage with 400 and keeps serving", async () => {
    const imds = await cloud.startImds("n0", cloud.addVirtualMachine("vm"));
    const port = Number(new URL(imds.url).port);
    expect(await rawExchange(port, "NOT HTTP AT ALL\r\n\r\n")).toMatch(/^HTTP\/1\.1 400/);
    const malformed = await call(`${imds.url}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=%E0%A4%A`, { headers: { metadata: "true" } });
    expect(malformed.status).toBeGreaterThanOrEqual(400);
    expect(malformed.status).toBeLessThan(500);
    expect((await call(`${imds.url}/metadata/instance?api-version=2021-02-01`, { headers: { metadata: "true" } })).status).toBe(200);
  });

  it("ARM and Key Vault answer malformed percent-encoding with 4xx in their own error shapes", async () => {
    const arm = await cloud.startArm();
    const vault = await cloud.startKeyVault("bad-input-kv");
    const agent = caAgent(cloud.ca.certPem);
    try {
      const token = await armToken(cloud);
      const armAnswer = await call(`${arm.url}/subscriptions/%E0%A4%A?api-version=2022-03-01`, { headers: { authorization: `Bearer ${token}` }, dispatcher: agent });
      expect(armAnswer.status).toBe(404);
      expect(armAnswer.body).toMatchObject({ error: { code: "InvalidResourceType" } });
      const vaultToken = (await cloud.tokenIssuer.issue({ audience: "https://vault.azure.net", tenantId: cloud.tenantId, objectId: "o", appId: "a" })).token;
      const kvAnswer = await call(`${vault.url}/secrets/%E0%A4%A?api-version=7.6`, { headers: { authorization: `Bearer ${vaultToken}` }, dispatcher: agent });
      expect(kvAnswer.status).toBe(404);
      expect(kvAnswer.body).toMatchObject({ error: { code: "NotFound" } });
      const garbage = await call(`${arm.url}/subscriptions?api-version=2022-03-01`, { headers: { authorization: "Bearer not-a-jwt" }, dispatcher: agent });
      expect(garbage.body).toMatchObject({ error: { code: "InvalidAuthenticationToken" } });
      expect((await call(`${arm.url}/subscriptions?api-version=2022-03-01`, { headers: { authorization: `Bearer ${token}` }, dispatcher: agent })).status).toBe(200);
    } finally {
      await agent.close();
    }
  });
});
