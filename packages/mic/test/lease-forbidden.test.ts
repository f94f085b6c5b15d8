import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Harness, until } from "./helpers/harness";

let h: Harness;
beforeEach(async () => {
  h = await Harness.start({ tokens: { "token-a": "mic-a" } });
});
afterEach(async () => {
  await h.close();
});

async function readyz(url: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, text: await res.text() };
}

describe("a Lease the API forbids (RBAC for another name or namespace)", () => {
  it("reports not ready on /readyz with the 403 in the reason, and recovers once the Lease is allowed", async () => {
    h.kube.failNext({ resource: "leases", code: 403, reason: "Forbidden", message: 'leases.coordination.k8s.io "mic-lease" is forbidden: User "mic-a" cannot get resource "leases"', count: 1_000_000 });
    const mic = await h.startMic({
      kubeConfig: h.kubeConfig("token-a"),
      leaderElection: { enabled: true, identity: "mic-a", namespace: "default", name: "mic-lease", leaseDurationMs: 1_500, renewDeadlineMs: 1_000, retryPeriodMs: 100 },
      httpProbePort: 0,
      prometheusPort: 0,
      probeHost: "127.0.0.1",
    });
    let refused = { status: 0, text: "" };
    await until(async () => (refused = await readyz(mic.probeUrl!)).status === 503 && refused.text !== "informers not synced", "/readyz 503 for the Lease");
    expect(refused.text).toMatch(/403/);
    expect(refused.text).toMatch(/default\/mic-lease/);
    expect(refused.text).toMatch(/--leader-election-name/);
    expect(mic.isLeader).toBe(false);

    h.kube.clearFaults();
    await until(() => mic.isLeader, "leads once allowed");
    await until(async () => (await readyz(mic.probeUrl!)).status === 200, "/readyz 200");
  });
});
