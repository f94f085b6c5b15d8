import { connect } from "node:net";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { UserAssignedIdentity } from "@podidentity/testbed";
import { parseRequestTarget } from "../src/server/request-route";
import { Cluster, eventually } from "./helpers/cluster";
import { jwtClaims, parseRawAnswer, type RawAnswer } from "./helpers/raw-http";

let c: Cluster;
let uai: UserAssignedIdentity;
const BOUND = "127.0.17.1";
const UNBOUND = "127.0.17.2";
const unhandled: unknown[] = [];
const onUnhandled = (e: unknown): void => void unhandled.push(e);

beforeAll(async () => {
  process.on("unhandledRejection", onUnhandled);
  c = await Cluster.start();
  uai = c.cloud.createUserAssignedIdentity("kv-reader");
  c.assignOnVm(uai);
  c.identity("shop", "kv-reader", uai, { selector: "web" });
  c.pod("web-1", BOUND, { namespace: "shop", label: "web" });
  c.pod("loner", UNBOUND, { namespace: "shop", label: "nothing" });
  c.assigned({ name: "web-1", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Assigned");
  await c.startNmi({ headersTimeoutMs: 500, requestTimeoutMs: 1_000, podWaitMs: 50, waitForAssignmentMs: 100 });
});
afterAll(async () => {
  process.off("unhandledRejection", onUnhandled);
  await c.close();
});

const segment = fc.oneof(
  fc.constantFrom("metadata", "METADATA", "identity", "oauth2", "token", "host", "instance", "compute", "..", ".", "%2e%2e", "%2E.", ".%2e", "%2e", "%00", "\\", "", "x;y", "%2f", "%5C"),
  fc.string({ maxLength: 12 }).map((s) => encodeURIComponent(s)),
);
const path = fc.array(segment, { maxLength: 6 }).map((parts) => `/${parts.join("/")}`);
const query = fc.dictionary(
  fc.constantFrom("resource", "client_id", "msi_res_id", "mi_res_id", "object_id", "api-version", "x"),
  fc.oneof(fc.string({ maxLength: 40 }), fc.constant("https://vault.azure.net"), fc.string({ minLength: 2000, maxLength: 4000 })),
);
const method = fc.constantFrom("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH");

/**
 * The oracle: a 200 on the token route carries a token of the calling pod's own identity (and only the bound pod
 * gets one); any other 200 is a proxied answer that carries no token; everything else is IMDS-shaped JSON (NMI's
 * own answers have `error_description` too; IMDS's, passed through, at least a string `error`).
 */
function isExpected(ip: string, target: string, method: string, a: RawAnswer): string | undefined {
  if (method === "HEAD") return undefined;
  const b = a.body as { error?: unknown; error_description?: unknown; access_token?: unknown } | undefined;
  if (a.status === 200) {
    if (parseRequestTarget(target).route === "token") {
      if (typeof b?.access_token !== "string") return "200 on the token route without a token";
      if (ip !== BOUND) return "a token for a pod without binding";
      if (jwtClaims(b.access_token)["appid"] !== uai.clientId) return "a token of an identity the pod is not bound to";
      return undefined;
    }
    return typeof b === "object" && b !== null && b.access_token === undefined ? undefined : "a 200 off the token route with a token or no JSON";
  }
  if (typeof b !== "object" || b === null || typeof b.error !== "string") return "not IMDS-shaped JSON";
  if (b.error.startsWith("podidentity_") && typeof b.error_description !== "string") return "NMI's answer without error_description";
  return undefined;
}

describe("bad input", () => {
  it("random paths (dot segments reach NMI as sent), queries, headers and methods: always the expected answer with NMI's header", async () => {
    await fc.assert(
      fc.asyncProperty(path, query, method, fc.boolean(), fc.constantFrom(BOUND, UNBOUND), async (p, q, m, header, ip) => {
        const qs = new URLSearchParams(q).toString();
        const target = `${p}${qs ? `?${qs}` : ""}`;
        // A raw socket: no client-side `..` normalisation between the generated target and NMI.
        const raw = await c.raw(ip, `${m} ${target} HTTP/1.1\r\nhost: 169.254.169.254\r\nmetadata: ${header ? "true" : "nope"}\r\nconnection: close\r\n\r\n`);
        const a = parseRawAnswer(raw);
        expect(a, `${m} ${target}: no HTTP answer`).toBeDefined();
        expect(a!.headers["x-podidentity-nmi"]).toBe("0.1.0");
        expect(a!.status).toBeGreaterThanOrEqual(200);
        expect(isExpected(ip, target, m, a!), `${m} ${target} → ${a!.status} ${a!.text.slice(0, 200)}`).toBeUndefined();
      }),
      { numRuns: 150 },
    );
    expect(unhandled).toEqual([]);
  }, 60_000);

  it("the oracle is exact: the bound pod's own token passes, a token from the unbound pod's address would not", async () => {
    const target = `/x/../metadata/%2e/identity/oauth2/token?api-version=2018-02-01&resource=${encodeURIComponent("https://vault.azure.net")}`;
    const a = parseRawAnswer(await c.raw(BOUND, `GET ${target} HTTP/1.1\r\nhost: nmi\r\nmetadata: true\r\nconnection: close\r\n\r\n`))!;
    expect(a.status, a.text).toBe(200);
    expect(isExpected(BOUND, target, "GET", a)).toBeUndefined();
    expect(isExpected(UNBOUND, target, "GET", a)).toBe("a token for a pod without binding");
    expect(isExpected(BOUND, target, "GET", { ...a, body: { error: "x" } })).toBe("200 on the token route without a token");
  });

  it("token requests from a pod without binding never reach IMDS", async () => {
    const before = c.imds.counters.requests;
    await fc.assert(
      fc.asyncProperty(query, async (q) => {
        const r = await c.call(UNBOUND, `/metadata/identity/oauth2/token?${new URLSearchParams(q).toString()}`, { headers: { metadata: "true" } });
        // 431 when the query alone overflows the header bound.
        expect([400, 403, 431]).toContain(r.status);
      }),
      { numRuns: 50 },
    );
    expect(c.imds.counters.requests).toBe(before);
  }, 30_000);

  it("oversized headers get 431 in IMDS's error shape", async () => {
    const raw = await c.raw(BOUND, `GET /metadata/identity/oauth2/token?resource=x HTTP/1.1\r\nhost: nmi\r\nmetadata: true\r\nx-big: ${"a".repeat(64 * 1024)}\r\n\r\n`);
    expect(raw).toMatch(/^HTTP\/1.1 431 /);
    expect(raw).toContain("x-podidentity-nmi: 0.1.0");
    expect(raw).toContain('"error":"invalid_request"');
  });

  it("garbage instead of HTTP gets 400", async () => {
    const raw = await c.raw(BOUND, "\x00\x01\x02 not http at all\r\n\r\n");
    expect(raw).toMatch(/^HTTP\/1.1 400 /);
  });

  it("a slowloris client is cut off after the header timeout while others are served", async () => {
    const { port } = new URL(c.nmi!.url);
    const socket = connect({ host: "127.0.0.1", port: Number(port), localAddress: BOUND });
    const closed = new Promise<string>((resolve) => {
      let out = "";
      socket.setEncoding("utf8");
      socket.on("data", (d: string) => (out += d));
      socket.on("close", () => resolve(out));
      socket.on("error", () => undefined);
    });
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.write("GET /metadata/identity/oauth2/token?resource=https%3A%2F%2Fvault.azure.net HTTP/1.1\r\nhost: nmi\r\n");
    const drip = setInterval(() => socket.writable && socket.write("x-slow: 1\r\n"), 100);
    try {
      const served = await c.token(BOUND);
      expect(served.status).toBe(200);
      const out = await closed;
      expect(out === "" || /^HTTP\/1.1 40[08] /.test(out)).toBe(true);
    } finally {
      clearInterval(drip);
      socket.destroy();
    }
  }, 10_000);

  it("a client that disconnects while its request is held ends the wait", async () => {
    c.pod("waiting", "127.0.17.3", { namespace: "shop", label: "web" });
    const nmi = c.nmi!;
    await eventually(() => (nmi.pods.lookup("127.0.17.3").kind === "pod" ? true : undefined), "pod known");
    const { port } = new URL(nmi.url);
    const socket = connect({ host: "127.0.0.1", port: Number(port), localAddress: "127.0.17.3" });
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.write("GET /metadata/identity/oauth2/token?resource=https%3A%2F%2Fvault.azure.net HTTP/1.1\r\nhost: nmi\r\nmetadata: true\r\n\r\n");
    await eventually(async () => ((await nmi.metrics.pendingInFlight.get()).values[0]?.value === 1 ? true : undefined), "held");
    socket.destroy();
    await eventually(async () => ((await nmi.metrics.pendingInFlight.get()).values[0]?.value === 0 ? true : undefined), "wait ended");
    const waits = await nmi.metrics.pendingWaits.get();
    expect(waits.values.find((v) => v.labels["outcome"] === "aborted")?.value).toBeGreaterThanOrEqual(1);
  });
});
