import { connect, type Socket } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { UserAssignedIdentity } from "@podidentity/testbed";
import { Cluster, eventually } from "./helpers/cluster";
import { parseRawAnswer } from "./helpers/raw-http";

let c: Cluster;
let uai: UserAssignedIdentity;
const BOUND = "127.0.22.1";
const HELD = "127.0.22.2";

beforeEach(async () => {
  c = await Cluster.start();
  uai = c.cloud.createUserAssignedIdentity("kv-reader");
  c.assignOnVm(uai);
  c.identity("shop", "kv-reader", uai, { selector: "web" });
  c.pod("web-1", BOUND, { namespace: "shop", label: "web" });
  c.assigned({ name: "web-1", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Assigned");
});
afterEach(async () => c.close());

function nmiPort(): number {
  return Number(new URL(c.nmi!.url).port);
}

/** A connection from `ip` that sends nothing; `closed` resolves with whatever NMI wrote before closing it. */
function idleSocket(ip: string): { socket: Socket; connected: Promise<void>; closed: Promise<string>; isClosed: () => boolean } {
  const socket = connect({ host: "127.0.0.1", port: nmiPort(), localAddress: ip });
  let out = "";
  let done = false;
  socket.setEncoding("utf8");
  socket.on("data", (d: string) => (out += d));
  socket.on("error", () => undefined);
  const closed = new Promise<string>((resolve) => socket.on("close", () => ((done = true), resolve(out))));
  const connected = new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  return { socket, connected, closed, isClosed: () => done };
}

async function closedBy(reason: string): Promise<number> {
  const m = await c.nmi!.metrics.connectionsClosed.get();
  return m.values.find((v) => v.labels["reason"] === reason)?.value ?? 0;
}

/** Every answer in a raw stream: each status line must come with NMI's header and a JSON error body. */
function answersIn(raw: string): Array<{ status: number; body: { error?: unknown; error_description?: unknown } }> {
  const parts = raw.split(/(?=HTTP\/1\.1 \d{3} )/).filter((p) => p.startsWith("HTTP/1.1 "));
  return parts.map((part) => {
    const a = parseRawAnswer(part);
    if (a === undefined) throw new Error(`unparseable answer: ${JSON.stringify(part.slice(0, 200))}`);
    expect(a.headers["x-podidentity-nmi"], part).toBe("0.1.0");
    expect(a.headers["content-type"], part).toMatch(/^application\/json/);
    return { status: a.status, body: a.body as { error?: unknown; error_description?: unknown } };
  });
}

describe("answers Node's parser would give itself are IMDS-shaped JSON with NMI's header", () => {
  it.each([
    ["no Host", "GET /metadata/instance?api-version=2021-02-01 HTTP/1.1\r\nmetadata: true\r\n\r\n", 400],
    ["two Hosts", "GET /metadata/instance?api-version=2021-02-01 HTTP/1.1\r\nhost: a\r\nhost: b\r\nmetadata: true\r\n\r\n", 400],
    ["CONNECT", "CONNECT 169.254.169.254:80 HTTP/1.1\r\nhost: 169.254.169.254:80\r\n\r\n", 405],
    ["upgrade", "GET /nope HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n", 404],
    ["bad chunking", "POST /nope HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", 404],
    ["HTTP/0.9", "GET /\r\n\r\n", 404],
    ["HTTP/1.0 without Host", "GET /metadata/nope HTTP/1.0\r\n\r\n", 404],
    ["invalid method", "G@T / HTTP/1.1\r\nhost: a\r\n\r\n", 400],
    ["garbage", "\x00\x01\x02 not http\r\n\r\n", 400],
    ["header without colon", "GET / HTTP/1.1\r\nhost: a\r\nbroken\r\n\r\n", 400],
    ["space before colon", "GET / HTTP/1.1\r\nhost : a\r\n\r\n", 400],
    ["content-length and chunked", "POST /nope HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n", 400],
  ])("%s", async (_name, text, status) => {
    await c.startNmi();
    const raw = await c.raw(BOUND, text);
    const answers = answersIn(raw);
    expect(answers.length, raw).toBeGreaterThanOrEqual(1);
    expect(answers[0]!.status, raw).toBe(status);
    for (const a of answers) {
      expect(typeof a.body.error).toBe("string");
      expect(typeof a.body.error_description).toBe("string");
    }
  });
});

describe("connections", () => {
  it("a connection that never sends a byte is closed after --idle-connection-timeout; one that sent a request is not", async () => {
    await c.startNmi({ idleConnectionTimeoutMs: 300, waitForAssignmentMs: 1_500 });
    // A request held longer than the idle timeout (its assignment never completes) still gets its answer.
    c.pod("held", HELD, { namespace: "shop", label: "web" });
    c.assigned({ name: "held", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Created");
    const idle = idleSocket(BOUND);
    await idle.connected;
    const held = c.token(HELD);
    expect(await idle.closed).toBe("");
    expect(await closedBy("idle")).toBe(1);
    const r = await held;
    expect(r.status, r.text).toBe(503);
    expect(r.body.error).toBe("podidentity_pending");
    expect(await closedBy("idle")).toBe(1);
  });

  it("at --max-connections, idle connections are evicted oldest first and a pod is still served", async () => {
    await c.startNmi({ maxConnections: 20 });
    const idle = Array.from({ length: 50 }, () => idleSocket("127.0.22.9"));
    await Promise.all(idle.map((s) => s.connected));
    const r = await c.token(BOUND);
    expect(r.status, r.text).toBe(200);
    // 50 idle + 1 served connection through a cap of 20: 31 evictions, the oldest 31.
    await eventually(async () => ((await closedBy("evicted")) === 31 ? true : undefined), "31 evictions");
    await eventually(() => (idle.slice(0, 31).every((s) => s.isClosed()) ? true : undefined), "the oldest closed");
    expect(idle.slice(31).filter((s) => s.isClosed())).toHaveLength(0);
    expect(await closedBy("refused")).toBe(0);
    for (const s of idle) s.socket.destroy();
  });

  it("when every connection at the cap has a request in progress, a new one gets 503 podidentity_overloaded", async () => {
    await c.startNmi({ maxConnections: 2, waitForAssignmentMs: 10_000 });
    c.pod("held", HELD, { namespace: "shop", label: "web" });
    const name = c.assigned({ name: "held", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Created");
    const nmi = c.nmi!;
    await eventually(() => (nmi.pods.lookup(HELD).kind === "pod" ? true : undefined), "pod known");
    const held = [c.raw(HELD, "GET /metadata/identity/oauth2/token?resource=https%3A%2F%2Fvault.azure.net HTTP/1.1\r\nhost: a\r\nmetadata: true\r\nconnection: close\r\n\r\n"), c.raw(HELD, "GET /metadata/identity/oauth2/token?resource=https%3A%2F%2Fvault.azure.net HTTP/1.1\r\nhost: a\r\nmetadata: true\r\nconnection: close\r\n\r\n")];
    await eventually(async () => ((await nmi.metrics.pendingInFlight.get()).values[0]?.value === 2 ? true : undefined), "two held");
    const refused = idleSocket(BOUND);
    const a = parseRawAnswer(await refused.closed);
    expect(a?.status).toBe(503);
    expect(a?.body).toMatchObject({ error: "podidentity_overloaded" });
    expect(a?.headers["retry-after"]).toBe("5");
    expect(a?.headers["x-podidentity-nmi"]).toBe("0.1.0");
    expect(await closedBy("refused")).toBe(1);
    c.setAssignedState("shop", name, "Assigned");
    for (const h of await Promise.all(held)) expect(parseRawAnswer(h)?.status).toBe(200);
  });
});
