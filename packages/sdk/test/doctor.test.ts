import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { runCli } from "../src/doctor/doctor-command";
import { clearAzureEnv } from "./helpers/credential";
import { fakeJwt, ImdsTestServer, nmiError } from "./helpers/imds-server";
import type { RecordedRequest, ScriptedResponse } from "./helpers/imds-server";

const TID = "72f988bf-86f1-41af-91ab-2d7cd011db47";

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(args, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

describe("podidentity doctor", () => {
  let server: ImdsTestServer;
  let token: string;
  let nmi: boolean;

  beforeEach(async () => {
    clearAzureEnv();
    server = await ImdsTestServer.start();
    nmi = true;
    const exp = Math.floor(Date.now() / 1000) + 3600;
    token = fakeJwt({
      aud: "https://management.azure.com/",
      iss: `https://sts.windows.net/${TID}/`,
      tid: TID,
      oid: "oid-123",
      appid: "app-456",
      exp,
    });
    // NMI-like: refuses requests without the Metadata header (the probe), answers tokens otherwise.
    server.fallback = (request: RecordedRequest): ScriptedResponse => {
      const headers: Record<string, string> = nmi ? { "x-podidentity-nmi": "1.2.3" } : {};
      if (request.headers.metadata !== "true") {
        return { status: 400, headers, body: { error: "invalid_request", error_description: "Required metadata header not specified" } };
      }
      return { headers, body: { access_token: token, expires_on: String(exp), resource: request.query.get("resource") } };
    };
  });
  afterEach(async () => {
    await server.close();
    vi.unstubAllEnvs();
  });

  it("reports NMI, latency and the token's decoded claims, never the token, and exits 0", async () => {
    const { code, out } = await cli("doctor", "--endpoint", server.url);
    expect(code).toBe(0);
    expect(out).toMatch(/reachable\s+yes, NMI 1\.2\.3, HTTP 400 in \d+ ms/);
    expect(out).toMatch(/aud\s+https:\/\/management\.azure\.com\//);
    expect(out).toMatch(new RegExp(`tid\\s+${TID}`));
    expect(out).toMatch(/oid\s+oid-123/);
    expect(out).toMatch(/appid\s+app-456/);
    expect(out).toMatch(/expires\s+\S+ \(\d+ min \d+ s left\)|expires\s+\S+ \(1 h 0 min left\)/);
    expect(out).toContain("OK: a token was obtained");
    expect(out).not.toContain(token);
    expect(out).not.toContain(token.split(".")[1]);
    expect(server.requests.at(-1)!.query.get("resource")).toBe("https://management.azure.com/");
  });

  it("--json prints a machine-readable report for the requested resource and identity", async () => {
    const { code, out } = await cli("doctor", "--endpoint", server.url, "--json", "--resource", "https://vault.azure.net", "--client-id", "abc");
    expect(code).toBe(0);
    const report: unknown = JSON.parse(out);
    expect(report).toMatchObject({
      ok: true,
      mode: "imds",
      identity: "client_id=abc",
      resource: "https://vault.azure.net",
      probe: { reachable: true, kind: "nmi", nmiVersion: "1.2.3" },
      token: { claims: { tid: TID, oid: "oid-123", appid: "app-456" } },
    });
    expect(out).not.toContain(token);
    expect(server.requests.at(-1)!.query.get("client_id")).toBe("abc");
  });

  it("tells plain IMDS from NMI by the missing x-podidentity-nmi header", async () => {
    nmi = false;
    const { code, out } = await cli("doctor", "--endpoint", server.url);
    expect(code).toBe(0);
    expect(out).toContain("plain IMDS (no x-podidentity-nmi header)");
  });

  it("explains podidentity_no_binding in one line with its fix and exits 1", async () => {
    server.enqueue({ status: 400, headers: { "x-podidentity-nmi": "1.2.3" } }, nmiError(403, "podidentity_no_binding"));
    const { code, out } = await cli("doctor", "--endpoint", server.url);
    expect(code).toBe(1);
    expect(out).toContain(
      "FAILED IDENTITY_UNAVAILABLE (403 podidentity_no_binding): no AzureIdentityBinding selects this pod: check the pod's aadpodidbinding label matches a binding's selector in the same namespace",
    );
  });

  it("explains podidentity_assignment_failed with ARM's message and the kubectl describe to run, after one request", async () => {
    const description =
      "the identity of pod shop/web-1 cannot be assigned to node node-a: MIC could not assign AzureIdentity shop/kv-reader (since 2025-01-02T03:04:05Z): " +
      "ARM answered FailedIdentityOperation: Identity operation for resource '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/pool' failed with error " +
      "'Failed to perform resource identity operation. Status: 'NotFound'. Response: '{\"error\":{\"code\":\"NotFound\",\"message\":\"Resource '/subscriptions/s/resourcegroups/rg/providers/microsoft.managedidentity/userassignedidentities/ghost' was not found.\"}}'.'.; " +
      "fix the AzureIdentity's resourceID, the identity in Azure or MIC's permissions (MIC retries with backoff, and at once when the AzureIdentity is edited); " +
      "details: kubectl describe azureassignedidentity web-1-shop-kv-reader -n shop";
    server.enqueue({ status: 400, headers: { "x-podidentity-nmi": "1.2.3" } }, { status: 403, headers: { "x-podidentity-nmi": "1.2.3" }, body: { error: "podidentity_assignment_failed", error_description: description } });
    const { code, out } = await cli("doctor", "--endpoint", server.url);
    expect(code).toBe(1);
    expect(out).toContain("FAILED IDENTITY_UNAVAILABLE (403 podidentity_assignment_failed): the identity cannot be assigned to the node");
    expect(out).toContain("was not found.");
    expect(out).toContain("\n  run: kubectl describe azureassignedidentity web-1-shop-kv-reader -n shop");
    expect(out).not.toMatch(/wait and retry/);
    expect(server.requests.filter((r) => r.headers.metadata === "true")).toHaveLength(1);
  });

  it("in managed mode points podidentity_assignment_failed at the AzureIdentity", async () => {
    const description =
      "the node's IMDS has answered \"Identity not found\" for AzureIdentity shop/kv-reader (client ID 1111…4444) for 61 s, past the propagation grace; in managed mode nothing assigns identities: " +
      "assign /subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/kv-reader to this node's VM/VMSS (az vmss identity assign / az vm identity assign), or fix the AzureIdentity's clientID/resourceID";
    server.enqueue({ status: 400, headers: { "x-podidentity-nmi": "1.2.3" } }, { status: 403, headers: { "x-podidentity-nmi": "1.2.3" }, body: { error: "podidentity_assignment_failed", error_description: description } });
    const { code, out } = await cli("doctor", "--endpoint", server.url);
    expect(code).toBe(1);
    expect(out).toContain("\n  run: kubectl describe azureidentity kv-reader -n shop");
  });

  it("explains a pending assignment that outlasts --timeout", async () => {
    server.enqueue({ status: 400, headers: { "x-podidentity-nmi": "1.2.3" } });
    server.fallback = () => nmiError(503, "podidentity_pending", { "retry-after": "0.05" });
    const { code, out } = await cli("doctor", "--endpoint", server.url, "--timeout", "300");
    expect(code).toBe(1);
    expect(out).toMatch(/FAILED (RETRY_EXHAUSTED|TIMEOUT) \(503 podidentity_pending\): a binding selects the pod but MIC has not finished/);
  });

  it("explains an endpoint where nothing listens", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const { code, out } = await cli("doctor", "--endpoint", `http://127.0.0.1:${port}`, "--timeout", "200");
    expect(code).toBe(1);
    expect(out).toMatch(/reachable\s+no \(ECONNREFUSED/);
    expect(out).toMatch(/FAILED \w+ \(ECONNREFUSED\): nothing listens at the endpoint/);
  });

  it("keeps its --timeout: an attempt still running when the time is up is cut (TIMEOUT), not waited for", async () => {
    server.fallback = (request: RecordedRequest): ScriptedResponse =>
      request.headers.metadata === "true"
        ? { delayMs: 10_000, body: {} } // a token request NMI holds far past --timeout
        : { status: 400, headers: { "x-podidentity-nmi": "1.2.3" }, body: { error: "invalid_request", error_description: "probe" } };
    const { code, out } = await cli("doctor", "--endpoint", server.url, "--timeout", "800", "--json");
    expect(code).toBe(1);
    const report = JSON.parse(out) as { failure: { code: string; fix: string } };
    // The old doctor let this attempt run for its own full timeout, then retried: RETRY_EXHAUSTED after 2 attempts.
    expect(report.failure.code).toBe("TIMEOUT");
    expect(report.failure.fix).toMatch(/longer --timeout/);
    expect(server.requests.filter((r) => r.headers.metadata === "true")).toHaveLength(1);
  });

  it("podidentity --version prints the package's version", async () => {
    const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    const { code, out } = await cli("--version");
    expect(code).toBe(0);
    expect(out).toBe(version);
  });

  it("explains a malformed --resource as the programming error it is", async () => {
    const { code, out } = await cli("doctor", "--endpoint", server.url, "--resource", " ");
    expect(code).toBe(1);
    expect(out).toMatch(/FAILED TypeError: pass exactly one non-empty resource/);
  });

  it("rejects conflicting identity options as a usage error (exit 2)", async () => {
    const { code, err } = await cli("doctor", "--client-id", "a", "--object-id", "b");
    expect(code).toBe(2);
    expect(err).toMatch(/cannot be used with/);
  });
});
