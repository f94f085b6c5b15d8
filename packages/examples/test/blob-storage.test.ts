import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AzuriteBlob } from "@podidentity/testbed";
import { ExampleCloud } from "./helpers/example-cloud";

describe("blob-storage example", () => {
  let env: ExampleCloud;
  let blob: AzuriteBlob;

  // Azurite is a real Node program whose cold start takes tens of seconds on a loaded 2-core machine: this bound is
  // a hang guard, not a speed claim.
  beforeEach(async () => {
    env = await ExampleCloud.start();
    blob = await env.cloud.startAzurite();
  }, 90_000);
  afterEach(async () => {
    await env.close();
  });

  it("creates the container, uploads and downloads a blob with the node identity's storage token", async () => {
    const first = await env.runApp("blob-storage", { BLOB_ACCOUNT_URL: blob.accountUrl, BLOB_CONTAINER: "reports", BLOB_NAME: "hello.txt" });

    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(first.stdout).toContain("container: reports (created)");
    expect(first.stdout).toMatch(/uploaded: reports\/hello\.txt, \d+ bytes, etag /);
    expect(first.stdout).toMatch(/downloaded: \d+ bytes, content matches/);
    expect(env.imds.counters.tokensIssued).toBe(1);

    const second = await env.runApp("blob-storage", { BLOB_ACCOUNT_URL: blob.accountUrl, BLOB_CONTAINER: "reports", BLOB_NAME: "hello.txt" });

    expect(second.code).toBe(0);
    expect(second.stdout).toContain("container: reports (already there)");
    // IMDS caches the token per identity and resource, so the second process got the same one.
    expect(env.imds.counters.byStatus[200]).toBe(2);
  }, 40_000);

  it("exits 1 with IMDS's answer when the identity it asks for is not on the node", async () => {
    const stranger = env.cloud.createUserAssignedIdentity("not-on-this-node");

    const result = await env.runApp("blob-storage", { BLOB_ACCOUNT_URL: blob.accountUrl, AZURE_CLIENT_ID: stranger.clientId });

    expect(result.code).toBe(1);
    expect(result.stderr).toContain("error: ");
    expect(result.stderr).toContain("Identity not found");
    expect(env.imds.counters.byStatus[400]).toBeGreaterThanOrEqual(1);
  }, 40_000);
});
