import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { UserAssignedIdentity } from "@podidentity/testbed";
import { Cluster, KV } from "./helpers/cluster";

let c: Cluster;
let uai: UserAssignedIdentity;
const IP = "127.0.13.1";

beforeEach(async () => {
  c = await Cluster.start();
  uai = c.cloud.createUserAssignedIdentity("kv-reader");
  c.assignOnVm(uai);
  c.identity("shop", "kv-reader", uai, { selector: "web" });
  c.pod("web-1", IP, { namespace: "shop", label: "web" });
  c.assigned({ name: "web-1", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Assigned");
});
afterEach(async () => c.close());

describe("/host/token", () => {
  it("answers {token, clientid} for the pod named in the headers, from 127.0.0.1", async () => {
    await c.startNmi();
    const r = await c.call("127.0.0.1", `/host/token?resource=${encodeURIComponent(KV)}`, { headers: { podname: "web-1", podns: "shop" } });
    expect(r.status, r.text).toBe(200);
    expect(r.body.clientid).toBe(uai.clientId);
    expect(r.body.token).toMatchObject({ resource: KV, token_type: "Bearer", client_id: uai.clientId });
    expect(r.headers["x-podidentity-nmi"]).toBe("0.1.0");
  });

  it("400 without podname/podns or resource", async () => {
    await c.startNmi();
    const missing = await c.call("127.0.0.1", `/host/token?resource=${encodeURIComponent(KV)}`, { headers: { podname: "web-1" } });
    expect(missing.status).toBe(400);
    expect(missing.body.error).toBe("invalid_request");
    const noResource = await c.call("127.0.0.1", "/host/token", { headers: { podname: "web-1", podns: "shop" } });
    expect(noResource.status).toBe(400);
  });

  it("refuses callers other than 127.0.0.1", async () => {
    await c.startNmi();
    const r = await c.call(IP, `/host/token?resource=${encodeURIComponent(KV)}`, { headers: { podname: "web-1", podns: "shop" } });
    expect(r.status).toBe(403);
    expect(r.body.error).toBe("podidentity_forbidden");
  });

  it("503 podidentity_pod_unknown for a pod not on this node", async () => {
    await c.startNmi();
    const r = await c.call("127.0.0.1", `/host/token?resource=${encodeURIComponent(KV)}`, { headers: { podname: "ghost", podns: "shop" } });
    expect(r.status).toBe(503);
    expect(r.body.error).toBe("podidentity_pod_unknown");
  });
});

describe("proxy to the upstream IMDS", () => {
  it("passes /metadata/instance through, with NMI's header added", async () => {
    await c.startNmi();
    const r = await c.call(IP, "/metadata/instance/compute?api-version=2021-02-01", { headers: { metadata: "true" } });
    expect(r.status, r.text).toBe(200);
    expect(r.body.name).toBe("node-a");
    expect(r.headers["x-podidentity-nmi"]).toBe("0.1.0");
  });

  it("403 for /metadata/instance with --block-instance-metadata, without calling IMDS", async () => {
    await c.startNmi({ blockInstanceMetadata: true });
    const r = await c.call(IP, "/Metadata/instance?api-version=2021-02-01", { headers: { metadata: "true" } });
    expect(r.status).toBe(403);
    expect(r.body.error).toBe("podidentity_forbidden");
    expect(c.imds.counters.requests).toBe(0);
  });

  it("answers 404 itself for paths not on the allowlist, and requires the Metadata header on proxied ones", async () => {
    await c.startNmi();
    const r = await c.call(IP, "/doesnotexist", { headers: { metadata: "true" } });
    expect(r.status).toBe(404);
    expect(r.body).toEqual({ error: "not_found", error_description: 'API not found: Path = "/doesnotexist", Method = "GET"' });
    expect(r.headers["x-podidentity-nmi"]).toBe("0.1.0");
    expect(c.imds.counters.requests).toBe(0);
    const noHeader = await c.call(IP, "/metadata/instance?api-version=2021-02-01");
    expect(noHeader.status).toBe(400);
    expect(noHeader.body.error_description).toBe("Required metadata header not specified");
    expect(c.imds.counters.requests).toBe(0);
  });

  it("is no open proxy: an absolute-form target still goes to the configured upstream only", async () => {
    await c.startNmi();
    const raw = await c.raw(IP, "GET http://example.invalid/metadata/instance/compute?api-version=2021-02-01 HTTP/1.1\r\nhost: example.invalid\r\nmetadata: true\r\nconnection: close\r\n\r\n");
    expect(raw).toMatch(/^HTTP\/1.1 200 /);
    expect(raw).toContain('"name":"node-a"');
    expect(c.imds.counters.requests).toBe(1);
  });

  it("503 podidentity_upstream_unavailable when the upstream cannot be reached", async () => {
    await c.startNmi({ upstreamImds: "http://127.0.0.1:9" });
    const r = await c.call(IP, "/metadata/instance?api-version=2021-02-01", { headers: { metadata: "true" } });
    expect(r.status).toBe(503);
    expect(r.body.error).toBe("podidentity_upstream_unavailable");
    expect(r.headers["retry-after"]).toBeDefined();
  });
});
