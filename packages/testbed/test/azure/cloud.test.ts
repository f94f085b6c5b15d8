import { X509Certificate } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { AzureCloud, TestbedCa } from "../../src/index";
import { armToken, caAgent, call } from "../helpers/azure-clients";

let cloud: AzureCloud | undefined;

afterEach(async () => {
  await cloud?.close();
  cloud = undefined;
});

describe("AzureCloud", () => {
  it("serves HTTPS on a non-default bind address with a leaf that covers it and the real Azure names", async () => {
    cloud = await AzureCloud.create();
    const arm = await cloud.startArm({ host: "127.0.0.2" });
    expect(arm.url).toMatch(/^https:\/\/127\.0\.0\.2:\d+$/);
    const leaf = new X509Certificate((await cloud.tlsFor("127.0.0.2")).certPem);
    expect(leaf.checkIP("127.0.0.2")).toBe("127.0.0.2");
    for (const host of ["management.azure.com", "login.microsoftonline.com", "myvault.vault.azure.net", "acct.blob.core.windows.net"]) {
      expect(leaf.checkHost(host), host).toBeDefined();
    }
    const agent = caAgent(cloud.ca.certPem);
    try {
      const r = await call(`${arm.url}/subscriptions?api-version=2019-11-01`, { headers: { authorization: `Bearer ${await armToken(cloud)}` }, dispatcher: agent });
      expect(r.status).toBe(200);
    } finally {
      await agent.close();
    }
  });

  it("shares a CA given to it and closes every server it started", async () => {
    const ca = await TestbedCa.create({ commonName: "shared" });
    cloud = await AzureCloud.create({ ca, tenantId: "72f988bf-86f1-41af-91ab-2d7cd011db47" });
    expect(cloud.ca).toBe(ca);
    expect(cloud.tenantId).toBe("72f988bf-86f1-41af-91ab-2d7cd011db47");
    const imdsUrl = (await cloud.startImds("n0", cloud.addVirtualMachine("vm0"))).url;
    const entraUrl = (await cloud.startEntra()).url;
    await cloud.close();
    await expect(call(`${imdsUrl}/metadata/instance`)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    const agent = caAgent(ca.certPem);
    await expect(call(`${entraUrl}/common/discovery/instance`, { dispatcher: agent })).rejects.toMatchObject({ code: "ECONNREFUSED" });
    await agent.close();
  });

  it("validates names with the class name in the message", async () => {
    cloud = await AzureCloud.create();
    expect(() => cloud!.createUserAssignedIdentity("x")).toThrow(/IdentityRegistry: identity name/);
    await expect(cloud.startKeyVault("-bad")).rejects.toThrow(/KeyVaultServer: vaultName/);
    expect(() => cloud!.addScaleSet("dup")).not.toThrow();
    expect(() => cloud!.addScaleSet("dup")).toThrow(/already exists/);
  });
});
