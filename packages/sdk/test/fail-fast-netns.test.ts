import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { runNodeInFreshNetns } from "./helpers/netns";

// The built SDK (turbo builds it before this package's tests), run in a child inside a private namespace.
const SCRIPT = fileURLToPath(new URL("./fixtures/get-token.mjs", import.meta.url));

interface Outcome {
  ok: boolean;
  name?: string;
  code?: string;
  rootCode?: string;
  message?: string;
  retries: number;
}

async function getTokenIn(setup: string[], env: NodeJS.ProcessEnv = {}): Promise<Outcome> {
  const run = await runNodeInFreshNetns(setup, SCRIPT, env);
  expect(run.stderr).toBe("");
  expect(run.status).toBe(0);
  return JSON.parse(run.stdout.trim()) as Outcome;
}

// Making a network namespace needs root, as the e2e suite does: skipped for a non-root developer, never in CI.
const skip = process.geteuid?.() !== 0 && process.env["CI"] !== "true";

describe.skipIf(skip)("off-cluster, the default endpoint 169.254.169.254 fails fast (CredentialUnavailableError, no retry)", () => {
  it("dropped: 169.254.169.254 is local but iptables drops its packets, so the connect times out", async () => {
    const outcome = await getTokenIn(["ip addr add 169.254.169.254/32 dev lo", "iptables -A INPUT -p tcp -d 169.254.169.254 -j DROP"]);
    expect(outcome).toMatchObject({ ok: false, name: "CredentialUnavailableError", code: "ENDPOINT_UNREACHABLE", rootCode: "ETIMEDOUT", retries: 0 });
    expect(outcome.message).toMatch(/no connection within firstContact\.connectTimeoutMs=1000/);
  });

  it("no route: a namespace with only a loopback gives ENETUNREACH", async () => {
    const outcome = await getTokenIn([]);
    expect(outcome).toMatchObject({ ok: false, name: "CredentialUnavailableError", code: "ENDPOINT_UNREACHABLE", rootCode: "ENETUNREACH", retries: 0 });
  });

  it("refused: 169.254.169.254 is local and nothing listens", async () => {
    const outcome = await getTokenIn(["ip addr add 169.254.169.254/32 dev lo"]);
    expect(outcome).toMatchObject({ ok: false, name: "CredentialUnavailableError", code: "ENDPOINT_UNREACHABLE", rootCode: "ECONNREFUSED", retries: 0 });
  });

  it("dropped, even in a pod: a connect timeout before any answer is not NMI restarting (NMI's rules refuse, never drop)", async () => {
    const outcome = await getTokenIn(["ip addr add 169.254.169.254/32 dev lo", "iptables -A INPUT -p tcp -d 169.254.169.254 -j DROP"], {
      KUBERNETES_SERVICE_HOST: "10.0.0.1",
    });
    expect(outcome).toMatchObject({ ok: false, code: "ENDPOINT_UNREACHABLE", rootCode: "ETIMEDOUT", retries: 0 });
  });
});
