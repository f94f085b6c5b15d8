import { execFile } from "node:child_process";
import { Agent } from "node:http";
import { promisify } from "node:util";
import { ManagedIdentityCredential } from "@azure/identity";
import { PodIdentityCredential } from "@podidentity/sdk";
import type { UserAssignedIdentity } from "@podidentity/testbed";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Cluster, KV } from "./helpers/cluster";

const run = promisify(execFile);
let c: Cluster;
let uai: UserAssignedIdentity;
const IP = "127.0.16.1";

beforeEach(async () => {
  c = await Cluster.start();
  uai = c.cloud.createUserAssignedIdentity("kv-reader");
  c.assignOnVm(uai);
  c.identity("shop", "kv-reader", uai, { selector: "web" });
  c.pod("web-1", IP, { namespace: "shop", label: "web" });
  c.assigned({ name: "web-1", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Assigned");
});
afterEach(async () => c.close());

describe("real clients", () => {
  it("our SDK's PodIdentityCredential gets the pod's token", async () => {
    const nmi = await c.startNmi();
    // The SDK's requests leave from the pod's address, as NMI identifies pods by source IP.
    const agent = new Agent({ localAddress: IP });
    const credential = new PodIdentityCredential({ endpoint: nmi.url, agent });
    const token = await credential.getToken("https://vault.azure.net/.default");
    await credential.close();
    agent.destroy();
    expect(token.token.split(".")).toHaveLength(3);
    expect(token.expiresOnTimestamp).toBeGreaterThan(Date.now());
  });

  it("curl, as a pod's shell script would call IMDS", async () => {
    const nmi = await c.startNmi();
    const { stdout } = await run("curl", ["-sS", "--interface", IP, "-H", "Metadata: true", `${nmi.url}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=${encodeURIComponent(KV)}`]);
    expect(JSON.parse(stdout)).toMatchObject({ client_id: uai.clientId, resource: KV });
  });

  it("@azure/identity's ManagedIdentityCredential, with a client ID, through AZURE_POD_IDENTITY_AUTHORITY_HOST", async () => {
    // The credential cannot bind a source address: here the pod has 127.0.0.1 and the node is only ::1.
    c.pod("sdk-app", "127.0.0.1", { namespace: "shop", label: "web" });
    c.assigned({ name: "sdk-app", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Assigned");
    const nmi = await c.startNmi({ nodeAddresses: ["::1"] });
    const previous = process.env["AZURE_POD_IDENTITY_AUTHORITY_HOST"];
    process.env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = nmi.url;
    try {
      const credential = new ManagedIdentityCredential({ clientId: uai.clientId });
      const token = await credential.getToken("https://vault.azure.net/.default");
      expect(token.token.split(".")).toHaveLength(3);
    } finally {
      if (previous === undefined) delete process.env["AZURE_POD_IDENTITY_AUTHORITY_HOST"];
      else process.env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = previous;
    }
  });
});
