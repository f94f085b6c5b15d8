import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { UserAssignedIdentity } from "@podidentity/testbed";
import { Cluster, KV, eventually } from "./helpers/cluster";

let c: Cluster;
let uai: UserAssignedIdentity;

beforeEach(async () => {
  c = await Cluster.start();
  uai = c.cloud.createUserAssignedIdentity("shared");
  c.assignOnVm(uai);
  c.identity("shop", "shared", uai, { selector: "web" });
});
afterEach(async () => c.close());

function pods(n: number): string[] {
  const ips: string[] = [];
  for (let i = 1; i <= n; i++) {
    const ip = `127.0.12.${i}`;
    c.pod(`web-${i}`, ip, { namespace: "shop", label: "web" });
    c.assigned({ name: `web-${i}`, namespace: "shop" }, { name: "shared", namespace: "shop" }, "Assigned");
    ips.push(ip);
  }
  return ips;
}

describe("token cache", () => {
  it("N pods asking at once for the same identity and resource cost one IMDS call", async () => {
    const ips = pods(20);
    await c.startNmi();
    const answers = await Promise.all(ips.map((ip) => c.token(ip)));
    expect(answers.map((a) => a.status)).toEqual(ips.map(() => 200));
    expect(new Set(answers.map((a) => a.body.access_token)).size).toBe(1);
    expect(c.imds.counters.requests).toBe(1);
    // And again, later: still served from the cache.
    await Promise.all(ips.map((ip) => c.token(ip)));
    expect(c.imds.counters.requests).toBe(1);
  });

  it("one call per (identity, resource)", async () => {
    const [ip] = pods(1);
    await c.startNmi();
    for (const resource of [KV, "https://storage.azure.com", KV, "https://storage.azure.com/"]) {
      expect((await c.token(ip!, { resource })).status).toBe(200);
    }
    expect(c.imds.counters.requests).toBe(2);
  });

  it("with the cache disabled every request is an IMDS call (v1.8's behaviour)", async () => {
    const ips = pods(3);
    await c.startNmi({ tokenCacheEnabled: false });
    for (const ip of ips) expect((await c.token(ip)).status).toBe(200);
    expect(c.imds.counters.requests).toBe(3);
  });

  it("drops an identity's tokens when the AzureIdentity changes", async () => {
    const [ip] = pods(1);
    const replacement = c.cloud.createUserAssignedIdentity("replacement");
    c.assignOnVm(replacement);
    const nmi = await c.startNmi();
    expect((await c.token(ip!)).body.client_id).toBe(uai.clientId);
    c.kube.patchObject("azureidentities.aadpodidentity.k8s.io", "shop", "shared", { spec: { clientID: replacement.clientId, resourceID: replacement.id } });
    // MIC re-assigns for the new identity: the AzureAssignedIdentity's copy of the identity follows.
    const updated = c.kube.getObject("azureidentities.aadpodidentity.k8s.io", "shop", "shared");
    c.kube.patchObject("azureassignedidentities.aadpodidentity.k8s.io", "shop", "web-1-shop-shared", { spec: { azureIdentityRef: updated } });
    await eventually(() => (nmi.tokens.size === 0 ? true : undefined), "cache entry dropped");
    const r = await c.token(ip!);
    expect(r.status, r.text).toBe(200);
    expect(r.body.client_id).toBe(replacement.clientId);
    expect(c.imds.counters.requests).toBe(2);
  });

  it("holds requests while the AzureAssignedIdentity still names the identity's previous client ID", async () => {
    const [ip] = pods(1);
    const replacement = c.cloud.createUserAssignedIdentity("replacement");
    c.assignOnVm(replacement);
    await c.startNmi({ waitForAssignmentMs: 300 });
    c.kube.patchObject("azureidentities.aadpodidentity.k8s.io", "shop", "shared", { spec: { clientID: replacement.clientId, resourceID: replacement.id } });
    const r = await eventually(async () => {
      const a = await c.token(ip!);
      return a.status === 503 ? a : undefined;
    }, "pending while MIC catches up");
    expect(r.body.error).toBe("podidentity_pending");
  });

  it("refreshes ahead of expiry in the background and keeps answering from the cache", async () => {
    const [ip] = pods(1);
    let offsetMs = 0;
    await c.startNmi({ now: () => Date.now() + offsetMs });
    const first = await c.token(ip!);
    expect(c.imds.counters.requests).toBe(1);
    // IMDS tokens live 24 h; at 20 h NMI is past min(half-life, expiry − 5 min).
    offsetMs = 20 * 3600_000;
    const second = await c.token(ip!);
    expect(second.status).toBe(200);
    expect(second.body.access_token).toBe(first.body.access_token);
    await eventually(() => (c.imds.counters.requests === 2 ? true : undefined), "background refresh");
    const third = await c.token(ip!);
    expect(third.status).toBe(200);
    expect(c.imds.counters.requests).toBe(2);
  });

  it("a token shorter than the refresh window costs one refresh for many lookups, not one upstream call per lookup", async () => {
    // 4-minute tokens with NMI's 5-minute refresh window: expiry − window is before the token even arrived.
    await c.close();
    c = await Cluster.start({ tokenLifetimeMs: 4 * 60_000 });
    uai = c.cloud.createUserAssignedIdentity("shared");
    c.assignOnVm(uai);
    c.identity("shop", "shared", uai, { selector: "web" });
    const [ip] = pods(1);
    let offsetMs = 0;
    const nmi = await c.startNmi({ now: () => Date.now() + offsetMs });
    expect((await c.token(ip!)).status).toBe(200);
    expect(c.imds.counters.requests).toBe(1);
    // Before its half-life: served from the cache, nothing upstream.
    for (let i = 0; i < 100; i++) expect((await c.token(ip!)).status).toBe(200);
    expect(c.imds.counters.requests).toBe(1);
    // Past the half-life: one background refresh, however many lookups come in while and after it runs.
    offsetMs = 2 * 60_000 + 5_000;
    const lookups = await Promise.all(Array.from({ length: 50 }, () => c.token(ip!)));
    expect(lookups.map((r) => r.status)).toEqual(lookups.map(() => 200));
    await eventually(() => (c.imds.counters.requests === 2 ? true : undefined), "one background refresh");
    for (let i = 0; i < 100; i++) expect((await c.token(ip!)).status).toBe(200);
    expect(c.imds.counters.requests).toBe(2);
    expect(nmi.tokens.size).toBe(1);
  });

  it("a background refresh that fails leaves the cached token served, and the next attempt waits for the cooldown", async () => {
    const [ip] = pods(1);
    let offsetMs = 0;
    await c.startNmi({ now: () => Date.now() + offsetMs });
    const first = await c.token(ip!);
    expect(first.status).toBe(200);
    // The identity leaves the VM: the node's IMDS now refuses it, so refreshes fail.
    c.vm.applyIdentityPatch({ type: "None" }, c.cloud.registry, { effectiveAtMs: c.cloud.clock.now() });
    offsetMs = 20 * 3600_000;
    expect((await c.token(ip!)).body.access_token).toBe(first.body.access_token);
    await eventually(() => (c.imds.counters.requests === 2 ? true : undefined), "the failed background refresh");
    for (let i = 0; i < 100; i++) expect((await c.token(ip!)).body.access_token).toBe(first.body.access_token);
    expect(c.imds.counters.requests).toBe(2);
    // After the cooldown, one more attempt.
    offsetMs += 31_000;
    expect((await c.token(ip!)).status).toBe(200);
    await eventually(() => (c.imds.counters.requests === 3 ? true : undefined), "the next attempt after the cooldown");
    for (let i = 0; i < 20; i++) await c.token(ip!);
    expect(c.imds.counters.requests).toBe(3);
  });

  it("makes no per-request list or get calls to the API server", async () => {
    const ips = pods(10);
    await c.startNmi();
    const before = c.kube.requestCounts();
    for (let round = 0; round < 5; round++) await Promise.all(ips.map((ip) => c.token(ip)));
    const after = c.kube.requestCounts();
    for (const key of Object.keys(after)) {
      if (key.startsWith("list ") || key.startsWith("get ")) expect(after[key], key).toBe(before[key]);
    }
  });

  it("keeps the node under IMDS's concurrency budget by queueing instead of getting 429s", async () => {
    await c.close();
    c = await Cluster.start({ imds: { requestsPerSecond: 1000, maxConcurrent: 2 } });
    uai = c.cloud.createUserAssignedIdentity("shared");
    c.assignOnVm(uai);
    c.identity("shop", "shared", uai, { selector: "web" });
    const [ip] = pods(1);
    c.imds.latencyMs = 30;
    await c.startNmi({ upstreamMaxConcurrent: 2 });
    const resources = ["https://vault.azure.net", "https://storage.azure.com", "https://management.azure.com", "https://graph.microsoft.com", "https://database.windows.net", "https://servicebus.azure.net"];
    const answers = await Promise.all(resources.map((resource) => c.token(ip!, { resource })));
    expect(answers.map((a) => a.status)).toEqual(resources.map(() => 200));
    expect(c.imds.counters.throttled).toBe(0);
  });
});
