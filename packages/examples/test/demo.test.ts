import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { TEST_BUILD_DIR } from "./helpers/build-apps";
import { startProgram } from "./helpers/example-cloud";

describe("the interim demo (make demo)", () => {
  it("assigns an identity through ARM, runs keyvault-secret against the local IMDS, prints timed steps and exits 0", async () => {
    const result = await startProgram(join(TEST_BUILD_DIR, "demo.js"), {}).result;

    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    for (const line of [
      /^ 1\. Start ARM, Entra ID, Key Vault and one node's IMDS \(127\.0\.0\.1\) \.+ +\d+\.\d\d s$/m,
      /^ 4\. Assign it to scale set 'aks-nodepool1-vmss' \(ARM PATCH \+ LRO\) \.+ +\d+\.\d\d s$/m,
      /provisioningState Updating → Succeeded after \d+ status polls \(Retry-After honoured\)/,
      /│ secret: demo-db-password, version [0-9a-f]{32}, \d+ characters \(value not printed\)/,
      /exit code 0; Key Vault saw GET \/secrets\/demo-db-password\/ → 401, GET \/secrets\/demo-db-password\/ → 200; IMDS issued 1 token\(s\)/,
      /^Done in \d+\.\d\d s\.$/m,
    ]) {
      expect(result.stdout).toMatch(line);
    }
    expect(result.stdout).not.toMatch(/s3cr3t|eyJ/); // no secret value, no JWT
  }, 60_000);

  it("shuts the emulators down and exits 130 on Ctrl-C", async () => {
    const demo = startProgram(join(TEST_BUILD_DIR, "demo.js"), {});
    await demo.waitForOutput(/^ 3\. /m);
    demo.child.kill("SIGINT");
    const result = await demo.result;

    expect(result.code).toBe(130);
    expect(result.stdout).toContain("SIGINT: shutting the emulators down…");
    expect(result.stdout).not.toContain("Done in");
  }, 60_000);
});
