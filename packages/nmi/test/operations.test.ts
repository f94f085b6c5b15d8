import { request } from "undici";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { UserAssignedIdentity } from "@podidentity/testbed";
import { Cluster, eventually } from "./helpers/cluster";

let c: Cluster;
let uai: UserAssignedIdentity;
const IP = "127.0.15.1";

beforeEach(async () => {
  c = await Cluster.start();
  uai = c.cloud.createUserAssignedIdentity("kv-reader");
  c.assignOnVm(uai);
  c.identity("shop", "kv-reader", uai, { selector: "web" });
  c.pod("web-1", IP, { namespace: "shop", label: "web" });
  c.assigned({ name: "web-1", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Assigned");
});
afterEach(async () => c.close());

async function get(url: string): Promise<{ status: number; text: string }> {
  const res = await request(url);
  return { status: res.statusCode, text: await res.body.text() };
}

describe("probes", () => {
  it("/healthz is 200 and /readyz is 200 once informers have synced", async () => {
    const nmi = await c.startNmi();
    expect((await get(`${nmi.probeUrl}/healthz`)).status).toBe(200);
    const ready = await get(`${nmi.probeUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(ready.text).toContain("[+]informer-pods ok");
    expect((await get(`${nmi.probeUrl}/debug/pprof`)).status).toBe(404);
  });

  it("/readyz is 503 while the informers cannot sync, /healthz stays 200", async () => {
    c.kube.failNext({ verb: "list", resource: "pods", count: 1000, code: 500 });
    const { Nmi } = await import("../src/index");
    const pino = (await import("pino")).default;
    const nmi = new Nmi({
      kube: c.kubeClient,
      nodeName: "node-a",
      port: 0,
      httpProbePort: 0,
      prometheusPort: 0,
      upstreamImds: c.imds.url,
      interception: null,
      checkNetworkPlugin: false,
      logger: pino({ level: "silent" }),
    });
    const starting = nmi.start();
    try {
      const probe = await eventually(() => {
        try {
          return nmi.probeUrl;
        } catch {
          return undefined;
        }
      }, "probe listener");
      await eventually(() => (c.kube.countRequests({ verb: "list", resource: "pods" }) > 0 ? true : undefined), "first pod list");
      expect((await get(`${probe}/healthz`)).status).toBe(200);
      const ready = await get(`${probe}/readyz`);
      expect(ready.status).toBe(503);
      expect(ready.text).toContain("[-]informer-pods failed");
      c.kube.clearFaults();
      await starting;
      expect((await get(`${probe}/readyz`)).status).toBe(200);
    } finally {
      await nmi.stop();
    }
  }, 15_000);
});

describe("metrics", () => {
  it("exposes requests, cache lookups, upstream calls and pending waits in Prometheus text", async () => {
    const nmi = await c.startNmi();
    await c.token(IP);
    await c.token(IP);
    await c.token("127.0.0.1");
    const { status, text } = await get(`${nmi.metricsUrl}/metrics`);
    expect(status).toBe(200);
    expect(text).toMatch(/podidentity_nmi_requests_total\{route="token",status="200",code="ok"\} 2/);
    expect(text).toMatch(/podidentity_nmi_requests_total\{route="token",status="403",code="podidentity_host_network"\} 1/);
    expect(text).toMatch(/podidentity_nmi_token_cache_total\{result="miss"\} 1/);
    expect(text).toMatch(/podidentity_nmi_token_cache_total\{result="hit"\} 1/);
    expect(text).toMatch(/podidentity_nmi_upstream_calls_total\{target="imds",outcome="ok"\} 1/);
    expect(text).toContain("podidentity_nmi_upstream_duration_seconds_bucket");
    expect(text).toContain("podidentity_nmi_request_duration_seconds_bucket");
    expect(text).toContain("podidentity_nmi_pending_waits_in_flight 0");
    expect(text).toContain("podidentity_nmi_ready 1");
    // No token, client ID or pod name ever lands in a label.
    expect(text).not.toContain(uai.clientId);
    expect(text).not.toContain("web-1");
  });
});

describe("API server outages", () => {
  it("keeps answering known pods while the API server restarts, and learns new pods afterwards", async () => {
    const nmi = await c.startNmi();
    expect((await c.token(IP)).status).toBe(200);
    await c.kube.restart({ keepState: true });
    // During and after the restart, known pods keep getting tokens from the caches.
    expect((await c.token(IP)).status).toBe(200);
    c.pod("web-2", "127.0.15.2", { namespace: "shop", label: "web" });
    c.assigned({ name: "web-2", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Assigned");
    await eventually(() => (nmi.pods.lookup("127.0.15.2").kind === "pod" ? true : undefined), "informer recovered");
    expect((await c.token("127.0.15.2")).status).toBe(200);
    expect(nmi.readiness().ready).toBe(true);
  }, 15_000);

  it("relists after the API server lost its history (410) and drops deleted objects", async () => {
    const nmi = await c.startNmi();
    c.kube.compactHistory();
    c.kube.dropWatches({ abrupt: true });
    c.kube.deleteObject("azureidentitybindings.aadpodidentity.k8s.io", "shop", "kv-reader-binding");
    await eventually(async () => ((await c.token(IP)).body.error === "podidentity_no_binding" ? true : undefined), "binding deletion seen");
    expect(nmi.readiness().ready).toBe(true);
  }, 15_000);
});
