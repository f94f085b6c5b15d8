import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { UserAssignedIdentity } from "@podidentity/testbed";
import { Cluster, KV, eventually } from "./helpers/cluster";

let c: Cluster;
let uai: UserAssignedIdentity;
const POD_IP = "127.0.10.1";

beforeEach(async () => {
  c = await Cluster.start();
  uai = c.cloud.createUserAssignedIdentity("kv-reader");
});
afterEach(async () => c.close());

/** Pod web-1 in shop, bound to kv-reader, assigned on the VM and Assigned. */
function boundPod(ip = POD_IP, name = "web-1"): void {
  c.identity("shop", "kv-reader", uai, { selector: "web" });
  c.pod(name, ip, { namespace: "shop", label: "web" });
  c.assigned({ name, namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Assigned");
  c.assignOnVm(uai);
}

describe("token route: success", () => {
  it("answers the bound identity's token with IMDS's string fields and client_id", async () => {
    boundPod();
    await c.startNmi();
    const r = await c.token(POD_IP);
    expect(r.status, r.text).toBe(200);
    expect(r.headers["x-podidentity-nmi"]).toBe("0.1.0");
    expect(r.headers["content-type"]).toMatch(/^application\/json/);
    expect(Object.keys(r.body).sort()).toEqual(["access_token", "client_id", "expires_in", "expires_on", "not_before", "refresh_token", "resource", "token_type"]);
    expect(r.body).toMatchObject({ token_type: "Bearer", resource: KV, client_id: uai.clientId, refresh_token: "" });
    for (const f of ["expires_in", "expires_on", "not_before"]) expect(r.body[f]).toMatch(/^\d+$/);
  });

  it("matches the metadata segment case-insensitively and accepts MSAL's trailing slash", async () => {
    boundPod();
    await c.startNmi();
    expect((await c.token(POD_IP, { resource: KV }, { path: "/METADATA/identity/oauth2/token" })).status).toBe(200);
    expect((await c.token(POD_IP, { resource: KV }, { path: "/Metadata/identity/oauth2/token/" })).status).toBe(200);
  });

  it("selects by client_id, msi_res_id and mi_res_id, ignoring case", async () => {
    boundPod();
    await c.startNmi();
    for (const q of [{ client_id: uai.clientId.toUpperCase() }, { msi_res_id: uai.id.toLowerCase() }, { mi_res_id: uai.id }] as Record<string, string>[]) {
      const r = await c.token(POD_IP, { resource: KV, ...q });
      expect(r.status, `${JSON.stringify(q)}: ${r.text}`).toBe(200);
      expect(r.body.client_id).toBe(uai.clientId);
    }
  });

  it("selects by object_id through the token's oid claim", async () => {
    boundPod();
    await c.startNmi();
    const ok = await c.token(POD_IP, { resource: KV, object_id: uai.principalId.toUpperCase() });
    expect(ok.status, ok.text).toBe(200);
    const other = await c.token(POD_IP, { resource: KV, object_id: "00000000-0000-0000-0000-0000000000ff" });
    expect(other.status).toBe(403);
    expect(other.body.error).toBe("podidentity_not_bound");
  });

  it("picks the requested identity among two bound to the pod", async () => {
    const second = c.cloud.createUserAssignedIdentity("blob-writer");
    boundPod();
    c.identity("shop", "blob-writer", second, { selector: "web" });
    c.assigned({ name: "web-1", namespace: "shop" }, { name: "blob-writer", namespace: "shop" }, "Assigned");
    c.assignOnVm(second);
    await c.startNmi();
    expect((await c.token(POD_IP, { resource: KV, client_id: second.clientId })).body.client_id).toBe(second.clientId);
    expect((await c.token(POD_IP, { resource: KV, client_id: uai.clientId })).body.client_id).toBe(uai.clientId);
  });
});

describe("token route: NMI's refusals (docs/contract.md error table)", () => {
  it("400 invalid_request without the Metadata: true header", async () => {
    boundPod();
    await c.startNmi();
    for (const headers of [{ metadata: "false" }, {}] as Record<string, string>[]) {
      const r = await c.call(POD_IP, `/metadata/identity/oauth2/token?resource=${encodeURIComponent(KV)}`, { headers });
      expect(r.status).toBe(400);
      expect(r.body).toEqual({ error: "invalid_request", error_description: "Required metadata header not specified" });
      expect(r.headers["x-podidentity-nmi"]).toBe("0.1.0");
    }
  });

  it("accepts a request without the header when --metadata-header-required=false", async () => {
    boundPod();
    await c.startNmi({ metadataHeaderRequired: false });
    const r = await c.call(POD_IP, `/metadata/identity/oauth2/token?resource=${encodeURIComponent(KV)}`);
    expect(r.status, r.text).toBe(200);
  });

  it("400 invalid_request without resource", async () => {
    boundPod();
    await c.startNmi();
    const r = await c.token(POD_IP, {});
    expect(r.status).toBe(400);
    expect(r.body.error).toBe("invalid_request");
    expect(r.body.error_description).toMatch(/resource/);
  });

  it("400 invalid_request for malformed token paths, never proxied", async () => {
    boundPod();
    await c.startNmi();
    const before = c.imds.counters.requests;
    const raw = await c.raw(POD_IP, "GET /metadata\\identity\\oauth2\\token?resource=x HTTP/1.1\r\nhost: nmi\r\nmetadata: true\r\nconnection: close\r\n\r\n");
    expect(raw).toMatch(/^HTTP\/1.1 400 /);
    expect(raw).toContain('"error":"invalid_request"');
    for (const path of ["/metadata/identity/x/oauth2/token", "/metadata/identity%2Foauth2%2Ftoken"]) {
      const r = await c.call(POD_IP, `${path}?resource=x`, { headers: { metadata: "true" } });
      expect(r.status, path).toBe(400);
      expect(r.body.error).toBe("invalid_request");
    }
    expect(c.imds.counters.requests).toBe(before);
    // Repeated slashes canonicalise to the token path (server/canonical-path.ts): the token route, not malformed.
    const collapsed = await c.call(POD_IP, `/METADATA//identity/oauth2/token?resource=${encodeURIComponent(KV)}`, { headers: { metadata: "true" } });
    expect(collapsed.status, collapsed.text).toBe(200);
  });

  it("405 for methods other than GET on the token route", async () => {
    boundPod();
    await c.startNmi();
    const r = await c.token(POD_IP, { resource: KV }, { method: "POST" });
    expect(r.status).toBe(405);
    expect(r.body.error).toBe("invalid_request");
  });

  it("403 podidentity_host_network for the node itself and for hostNetwork pods", async () => {
    boundPod();
    c.pod("agent", "127.0.20.1", { namespace: "shop", label: "web", hostNetwork: true });
    await c.startNmi();
    for (const ip of ["127.0.0.1", "127.0.20.1"]) {
      const r = await c.token(ip);
      expect(r.status, ip).toBe(403);
      expect(r.body.error).toBe("podidentity_host_network");
    }
  });

  it("403 podidentity_no_binding at once when no binding selects the pod", async () => {
    c.identity("shop", "kv-reader", uai, { selector: "web" });
    c.pod("nolabel", "127.0.10.2", { namespace: "shop" });
    c.pod("otherlabel", "127.0.10.3", { namespace: "shop", label: "api" });
    const nmi = await c.startNmi({ waitForAssignmentMs: 10_000 });
    for (const ip of ["127.0.10.2", "127.0.10.3"]) {
      const r = await c.token(ip);
      expect(r.status).toBe(403);
      expect(r.body.error).toBe("podidentity_no_binding");
    }
    // "At once": NMI never held either request for an assignment.
    expect((await nmi.metrics.pendingWaits.get()).values).toEqual([]);
    expect(c.imds.counters.requests).toBe(0);
  });

  it("403 podidentity_not_bound when the pod asks for an identity it is not bound to", async () => {
    const foreign = c.cloud.createUserAssignedIdentity("foreign");
    boundPod();
    c.assignOnVm(foreign);
    await c.startNmi();
    for (const q of [{ client_id: foreign.clientId }, { msi_res_id: foreign.id }] as Record<string, string>[]) {
      const r = await c.token(POD_IP, { resource: KV, ...q });
      expect(r.status).toBe(403);
      expect(r.body.error).toBe("podidentity_not_bound");
      expect(r.body.error_description).not.toContain(foreign.clientId);
    }
  });

  it("503 podidentity_pod_unknown with Retry-After for an IP no pod of this node has", async () => {
    boundPod();
    c.pod("elsewhere", "127.0.10.9", { namespace: "shop", label: "web", node: "node-b" });
    await c.startNmi({ podWaitMs: 200 });
    for (const ip of ["127.0.10.8", "127.0.10.9"]) {
      const r = await c.token(ip);
      expect(r.status).toBe(503);
      expect(r.body.error).toBe("podidentity_pod_unknown");
      expect(Number(r.headers["retry-after"])).toBeGreaterThan(0);
    }
  });

  it("waits for the pod cache to learn a new pod's IP instead of failing", async () => {
    boundPod();
    await c.startNmi({ podWaitMs: 5_000 });
    const pending = c.token("127.0.10.4");
    c.pod("web-2", "127.0.10.4", { namespace: "shop", label: "web" });
    c.assigned({ name: "web-2", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Assigned");
    const r = await pending;
    expect(r.status, r.text).toBe(200);
  });

  it("ignores finished pods whose IP was reused", async () => {
    boundPod();
    c.pod("old", "127.0.10.5", { namespace: "shop", label: "web", phase: "Succeeded" });
    await c.startNmi({ podWaitMs: 100 });
    expect((await c.token("127.0.10.5")).body.error).toBe("podidentity_pod_unknown");
  });
});

describe("token route: pending assignments", () => {
  it("holds the request while the assignment is Created and answers once MIC marks it Assigned", async () => {
    c.identity("shop", "kv-reader", uai, { selector: "web" });
    c.pod("web-1", POD_IP, { namespace: "shop", label: "web" });
    const name = c.assigned({ name: "web-1", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Created");
    const nmi = await c.startNmi({ waitForAssignmentMs: 10_000 });
    const answer = c.token(POD_IP);
    // Held, not refused: wait until NMI counts a request in flight, then do MIC's work.
    await eventually(async () => ((await nmi.metrics.pendingInFlight.get()).values[0]?.value === 1 ? true : undefined), "request held");
    c.assignOnVm(uai);
    c.setAssignedState("shop", name, "Assigned");
    const r = await answer;
    expect(r.status, r.text).toBe(200);
    const waits = await nmi.metrics.pendingWaits.get();
    expect(waits.values.find((v) => v.labels["outcome"] === "assigned")?.value).toBe(1);
  });

  it("holds the request until MIC creates the AzureAssignedIdentity", async () => {
    c.identity("shop", "kv-reader", uai, { selector: "web" });
    c.pod("web-1", POD_IP, { namespace: "shop", label: "web" });
    await c.startNmi({ waitForAssignmentMs: 10_000 });
    const answer = c.token(POD_IP);
    c.assignOnVm(uai);
    c.assigned({ name: "web-1", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Assigned");
    expect((await answer).status).toBe(200);
  });

  it("answers 403 at once when the binding is deleted while the request is held", async () => {
    c.identity("shop", "kv-reader", uai, { selector: "web" });
    c.pod("web-1", POD_IP, { namespace: "shop", label: "web" });
    c.assigned({ name: "web-1", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Created");
    const nmi = await c.startNmi({ waitForAssignmentMs: 10_000 });
    const answer = c.token(POD_IP);
    await eventually(async () => ((await nmi.metrics.pendingInFlight.get()).values[0]?.value === 1 ? true : undefined), "request held");
    c.kube.deleteObject("azureidentitybindings.aadpodidentity.k8s.io", "shop", "kv-reader-binding");
    const r = await answer;
    expect(r.status).toBe(403);
    expect(r.body.error).toBe("podidentity_no_binding");
    const waits = await nmi.metrics.pendingWaits.get();
    expect(waits.values.find((v) => v.labels["outcome"] === "refused")?.value).toBe(1);
  });

  it("503 podidentity_pending with Retry-After after --wait-for-assignment", async () => {
    c.identity("shop", "kv-reader", uai, { selector: "web" });
    c.pod("web-1", POD_IP, { namespace: "shop", label: "web" });
    c.assigned({ name: "web-1", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Created");
    const nmi = await c.startNmi({ waitForAssignmentMs: 300, retryAfterSeconds: 3 });
    const r = await c.token(POD_IP);
    expect(r.status).toBe(503);
    expect(r.body.error).toBe("podidentity_pending");
    expect(r.headers["retry-after"]).toBe("3");
    expect(c.imds.counters.requests).toBe(0);
    const waits = await nmi.metrics.pendingWaits.get();
    expect(waits.values.find((v) => v.labels["outcome"] === "timeout")?.value).toBe(1);
    // NMI held it for the whole --wait-for-assignment, by its own account (a timer never fires early).
    const held = (await nmi.metrics.pendingWaitDuration.get()).values;
    expect(held.find((v) => v.metricName?.endsWith("_count"))?.value).toBe(1);
    // The hold is timed by performance.now() but measured with the injected Date.now(): allow its 1 ms rounding.
    expect(held.find((v) => v.metricName?.endsWith("_sum"))?.value).toBeGreaterThanOrEqual(0.3 - 0.002);
  });

  it("treats IMDS's 'Identity not found' shortly after Assigned as propagation, not as a final answer", async () => {
    c.identity("shop", "kv-reader", uai, { selector: "web" });
    c.pod("web-1", POD_IP, { namespace: "shop", label: "web" });
    c.assigned({ name: "web-1", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Assigned");
    // On the VM, but IMDS does not know it yet: it only learns of it below, after NMI has been told "not found".
    c.assignOnVm(uai, 3_600_000);
    await c.startNmi({ waitForAssignmentMs: 5_000 });
    const answer = c.token(POD_IP);
    await eventually(() => ((c.imds.counters.byStatus[400] ?? 0) >= 1 ? true : undefined), "IMDS answered 'Identity not found'");
    c.vm.applyIdentityPatch({ type: "None" }, c.cloud.registry, { effectiveAtMs: c.cloud.clock.now() });
    c.assignOnVm(uai, 0); // propagation done
    const r = await answer;
    expect(r.status, r.text).toBe(200);
  });

  it("answers 503 podidentity_pending when the assignment never reaches IMDS within the hold", async () => {
    c.identity("shop", "kv-reader", uai, { selector: "web" });
    c.pod("web-1", POD_IP, { namespace: "shop", label: "web" });
    c.assigned({ name: "web-1", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Assigned");
    await c.startNmi({ waitForAssignmentMs: 400 });
    const r = await c.token(POD_IP);
    expect(r.status).toBe(503);
    expect(r.body.error).toBe("podidentity_pending");
    expect(r.headers["retry-after"]).toBeDefined();
  });

  it("passes IMDS's 'Identity not found' through once the propagation grace is over", async () => {
    c.identity("shop", "kv-reader", uai, { selector: "web" });
    c.pod("web-1", POD_IP, { namespace: "shop", label: "web" });
    c.assigned({ name: "web-1", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Assigned");
    await c.startNmi({ propagationGraceMs: 0 });
    const r = await c.token(POD_IP);
    expect(r.status).toBe(400);
    expect(r.body.error_description).toBe("Identity not found");
  });
});

describe("token route: upstream failures", () => {
  it("503 podidentity_upstream_unavailable while IMDS answers 410 (updating)", async () => {
    boundPod();
    c.imds.setUpdating(60_000);
    await c.startNmi();
    const r = await c.token(POD_IP);
    expect(r.status).toBe(503);
    expect(r.body.error).toBe("podidentity_upstream_unavailable");
    expect(r.headers["retry-after"]).toBeDefined();
  });

  it("503 podidentity_upstream_unavailable when IMDS throttles (429)", async () => {
    await c.close();
    c = await Cluster.start({ imds: { requestsPerSecond: 1 } });
    uai = c.cloud.createUserAssignedIdentity("kv-reader");
    boundPod();
    // NMI's own limiter set above IMDS's budget, so IMDS's 429 shows.
    await c.startNmi({ upstreamRequestsPerSecond: 100 });
    const resources = ["https://vault.azure.net", "https://storage.azure.com", "https://management.azure.com"];
    const answers = await Promise.all(resources.map((resource) => c.token(POD_IP, { resource })));
    const throttled = answers.filter((a) => a.status === 503);
    expect(throttled.length).toBeGreaterThanOrEqual(1);
    for (const a of throttled) expect(a.body.error).toBe("podidentity_upstream_unavailable");
    expect(c.imds.counters.throttled).toBeGreaterThanOrEqual(1);
  });

  it("503 podidentity_upstream_unavailable when IMDS cannot be reached", async () => {
    boundPod();
    await c.startNmi({ upstreamImds: "http://127.0.0.1:9" });
    const r = await c.token(POD_IP);
    expect(r.status).toBe(503);
    expect(r.body.error).toBe("podidentity_upstream_unavailable");
  });

  it("passes any other IMDS refusal through unchanged", async () => {
    boundPod();
    await c.startNmi();
    const r = await c.token(POD_IP, { resource: "https://unknown.example.com" });
    expect(r.status).toBe(400);
    expect(r.body.error).toBe("invalid_resource");
    expect(r.body.error_description).toMatch(/AADSTS500011/);
    expect(r.headers["x-podidentity-nmi"]).toBe("0.1.0");
  });
});

describe("exceptions", () => {
  it("passes an exception pod's request to IMDS untouched", async () => {
    c.exception("shop", "sidecar", { app: "legacy-agent" });
    c.pod("agent", "127.0.10.7", { namespace: "shop", labels: { app: "LEGACY-agent" } });
    c.assignOnVm(uai);
    await c.startNmi();
    const r = await c.token("127.0.10.7", { resource: KV });
    expect(r.status, r.text).toBe(200);
    // IMDS's own answer (it has ext_expires_in, which NMI never writes), with NMI's header added.
    expect(r.body.ext_expires_in).toBeDefined();
    expect(r.body.client_id).toBe(uai.clientId);
    expect(r.headers["x-podidentity-nmi"]).toBe("0.1.0");
  });

  it("does not apply an exception from another namespace", async () => {
    c.exception("other", "sidecar", { app: "legacy-agent" });
    c.pod("agent", "127.0.10.7", { namespace: "shop", labels: { app: "legacy-agent" } });
    await c.startNmi();
    expect((await c.token("127.0.10.7")).body.error).toBe("podidentity_no_binding");
  });
});
