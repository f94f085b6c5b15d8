// The interim demo (`make demo`): a local Azure — ARM, Entra ID, Key Vault and one node's IMDS, all
// in this process — where a user-assigned identity is created and assigned to the node's scale set over
// HTTPS as MIC would do it, then the keyvault-secret example runs as a child process and reads a secret
// with PodIdentityCredential. Prints each step with its timing; never a secret value or a token.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AzureTestbed } from "@podidentity/testbed";
import { requestJson, type JsonAnswer } from "./demo-http";

/**
 * Emulator delays, scaled down so the demo takes seconds. A real VMSS identity update runs 30–60 s, and
 * IMDS on the nodes learns about the identity some seconds after that.
 */
export const DEMO_TIMINGS = {
  operationDurationMs: 2_000,
  operationStandsFor: "30–60 s",
  propagationDelayMs: 500,
  propagationStandsFor: "~10 s",
  /** Nothing here should take this long; past it the demo fails instead of hanging. */
  stepDeadlineMs: 30_000,
  pollIntervalMs: 100,
} as const;

const ARM_API_VERSION = "2024-07-01";
const IDENTITY_API_VERSION = "2023-01-31";
const KEY_VAULT_API_VERSION = "2023-07-01";
const IDENTITY_NAME = "demo-app-identity";
const SECRET_NAME = "demo-db-password";

const startedAt = performance.now();
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const out = (line = "") => process.stdout.write(line + "\n");

let stepNumber = 0;

/** Runs one step, then prints its number, title and duration, and its details below. */
async function step<T>(title: string, run: () => Promise<{ value: T; details?: string[] }>): Promise<T> {
  const t0 = performance.now();
  const { value, details = [] } = await run();
  const took = performance.now() - t0;
  stepNumber++;
  out(`${String(stepNumber).padStart(2)}. ${`${title} `.padEnd(76, ".")} ${seconds(took).padStart(7)}`);
  for (const d of details) out(`      ${d}`);
  return value;
}

function expectStatus(answer: JsonAnswer, expected: number[], what: string): void {
  if (!expected.includes(answer.status)) {
    throw new Error(`${what}: HTTP ${answer.status} ${JSON.stringify(answer.body).slice(0, 300)}`);
  }
}

async function pollUntil<T>(what: string, attempt: () => Promise<T | undefined>, intervalMs: number): Promise<T> {
  const deadline = performance.now() + DEMO_TIMINGS.stepDeadlineMs;
  for (;;) {
    const result = await attempt();
    if (result !== undefined) return result;
    if (performance.now() > deadline) throw new Error(`${what}: still not done after ${seconds(DEMO_TIMINGS.stepDeadlineMs)}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Runs an example program as a child process; resolves with its exit code and its output lines. */
function runExample(script: string, env: NodeJS.ProcessEnv, track: (child: ChildProcess) => void): Promise<{ code: number; lines: string[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], { env, stdio: ["ignore", "pipe", "pipe"] });
    track(child);
    let output = "";
    const collect = (chunk: Buffer) => (output += chunk.toString("utf8"));
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), lines: output.split("\n").filter((l) => l.trim() !== "") }));
  });
}

async function main(): Promise<void> {
  out("podidentity demo — an app reads a Key Vault secret with PodIdentityCredential, against local Azure emulators");
  out(`(emulator delays are scaled down: a ${DEMO_TIMINGS.operationDurationMs / 1000} s VMSS update here stands for ${DEMO_TIMINGS.operationStandsFor} on Azure, ` +
    `${DEMO_TIMINGS.propagationDelayMs / 1000} s of IMDS propagation for ${DEMO_TIMINGS.propagationStandsFor})`);
  out();

  let testbed: AzureTestbed | undefined;
  let child: ChildProcess | undefined;
  let workDir: string | undefined;
  let stopping = false;
  const shutdown = async () => {
    child?.kill("SIGTERM");
    await testbed?.cloud.close();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    out(`\n${signal}: shutting the emulators down…`);
    void shutdown().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  try {
    testbed = await step("Start ARM, Entra ID, Key Vault and one node's IMDS (127.0.0.1)", async () => {
      const tb = await AzureTestbed.start({
        nodeCount: 1,
        vaultName: "demo-kv",
        operationDurationMs: DEMO_TIMINGS.operationDurationMs,
        propagationDelayMs: DEMO_TIMINGS.propagationDelayMs,
      });
      const e = tb.endpoints();
      return {
        value: tb,
        details: [`ARM ${e.arm}   Entra ID ${e.entra}   Key Vault ${e.keyVault}`, `node ${tb.imds[0]!.nodeName}: IMDS ${tb.imds[0]!.url}, scale set ${tb.scaleSet.name}`],
      };
    });
    const tb = testbed;
    const ca = tb.cloud.ca.certPem;
    workDir = await mkdtemp(join(tmpdir(), "podidentity-demo-"));
    const caPath = join(workDir, "ca.pem");
    await writeFile(caPath, ca);
    const { arm, entra, keyVault } = tb.endpoints();
    const rg = `/subscriptions/${tb.cloud.subscriptionId}/resourceGroups/${tb.cloud.resourceGroup}`;

    const armToken = await step("Sign in to Entra ID as MIC's service principal (client credentials)", async () => {
      const answer = await requestJson(`${entra}/${tb.cloud.tenantId}/oauth2/v2.0/token`, {
        method: "POST",
        ca,
        form: { grant_type: "client_credentials", client_id: tb.mic.appId, client_secret: tb.mic.secret, scope: "https://management.azure.com/.default" },
      });
      expectStatus(answer, [200], "Entra ID token request");
      const body = answer.body as { access_token: string; expires_in: number };
      return { value: body.access_token, details: [`ARM token for app ${tb.mic.appId}, valid ${Math.round(body.expires_in / 60)} min`] };
    });
    const auth = { authorization: `Bearer ${armToken}` };

    const identity = await step(`Create user-assigned identity '${IDENTITY_NAME}' (ARM PUT)`, async () => {
      const answer = await requestJson(`${arm}${rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${IDENTITY_NAME}?api-version=${IDENTITY_API_VERSION}`, {
        method: "PUT",
        ca,
        headers: auth,
        json: { location: tb.cloud.location },
      });
      expectStatus(answer, [200, 201], "create identity");
      const body = answer.body as { id: string; properties: { clientId: string; principalId: string } };
      return { value: { id: body.id, ...body.properties }, details: [`client ID ${body.properties.clientId}, object ID ${body.properties.principalId}`] };
    });

    await step(`Assign it to scale set '${tb.scaleSet.name}' (ARM PATCH + LRO)`, async () => {
      const patch = await requestJson(`${arm}${tb.scaleSet.id}?api-version=${ARM_API_VERSION}`, {
        method: "PATCH",
        ca,
        headers: auth,
        json: { identity: { type: "UserAssigned", userAssignedIdentities: { [identity.id]: {} } } },
      });
      expectStatus(patch, [200], "VMSS identity PATCH");
      const asyncUrl = String(patch.headers["azure-asyncoperation"]);
      let polls = 0;
      const status = await pollUntil("VMSS update", async () => {
        polls++;
        const answer = await requestJson(asyncUrl, { ca, headers: auth });
        expectStatus(answer, [200], "operation status");
        const s = (answer.body as { status: string }).status;
        if (s === "InProgress") {
          // Honour Retry-After, as MIC does.
          await new Promise((resolve) => setTimeout(resolve, Number(answer.headers["retry-after"] ?? 1) * 1000));
          return undefined;
        }
        return s;
      }, 0);
      if (status !== "Succeeded") throw new Error(`the VMSS update ended ${status}`);
      return { value: undefined, details: [`provisioningState Updating → ${status} after ${polls} status polls (Retry-After honoured)`] };
    });

    await step("Wait until the node's IMDS knows the identity (propagation)", async () => {
      let attempts = 0;
      await pollUntil("identity propagation", async () => {
        attempts++;
        const answer = await requestJson(
          `${tb.imds[0]!.url}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=${encodeURIComponent("https://vault.azure.net")}&client_id=${identity.clientId}`,
          { headers: { metadata: "true" } },
        );
        return answer.status === 200 ? true : undefined;
      }, DEMO_TIMINGS.pollIntervalMs);
      return { value: undefined, details: [`IMDS answered 200 after ${attempts} request(s) (400 "Identity not found" before)`] };
    });

    await step(`Store secret '${SECRET_NAME}', grant the identity get (ARM)`, async () => {
      tb.keyVault.putSecret(SECRET_NAME, `s3cr3t-${Math.random().toString(36).slice(2)}`);
      const answer = await requestJson(`${arm}${rg}/providers/Microsoft.KeyVault/vaults/demo-kv/accessPolicies/add?api-version=${KEY_VAULT_API_VERSION}`, {
        method: "PUT",
        ca,
        headers: auth,
        json: { properties: { accessPolicies: [{ tenantId: tb.cloud.tenantId, objectId: identity.principalId, permissions: { secrets: ["get"] } }] } },
      });
      expectStatus(answer, [200], "access policy");
      return { value: undefined, details: [`access policy: object ID ${identity.principalId} → secrets get`] };
    });

    const callsBefore = tb.keyVault.calls.length;
    const imdsBefore = tb.imds[0]!.counters.tokensIssued;
    const script = join(dirname(fileURLToPath(import.meta.url)), "keyvault-secret.js");
    const exitCode = await step("Run the keyvault-secret example (node dist/keyvault-secret.js)", async () => {
      const env: NodeJS.ProcessEnv = {
        PATH: process.env["PATH"],
        KEY_VAULT_URL: keyVault,
        SECRET_NAME,
        AZURE_POD_IDENTITY_AUTHORITY_HOST: tb.imds[0]!.url,
        NODE_EXTRA_CA_CERTS: caPath,
      };
      const { code, lines } = await runExample(script, env, (c) => (child = c));
      child = undefined;
      const calls = tb.keyVault.calls.slice(callsBefore).map((c) => `${c.method} ${c.path.split("?")[0]} → ${c.status}`);
      return {
        value: code,
        details: [
          `env: KEY_VAULT_URL=${keyVault} SECRET_NAME=${SECRET_NAME} AZURE_POD_IDENTITY_AUTHORITY_HOST=${tb.imds[0]!.url} NODE_EXTRA_CA_CERTS=<testbed CA>`,
          ...lines.map((l) => `│ ${l}`),
          `exit code ${code}; Key Vault saw ${calls.join(", ")}; IMDS issued ${tb.imds[0]!.counters.tokensIssued - imdsBefore} token(s)`,
        ],
      };
    });
    if (exitCode !== 0) throw new Error(`the example exited with code ${exitCode}`);

    await step("Shut the emulators down", async () => {
      await shutdown();
      testbed = undefined;
      workDir = undefined;
      return { value: undefined };
    });
    out();
    out(`Done in ${seconds(performance.now() - startedAt)}.`);
  } catch (error) {
    if (stopping) return;
    out(`✘ ${(error as Error).message}`);
    await shutdown();
    process.exitCode = 1;
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
  }
}

await main();
