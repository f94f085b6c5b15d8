import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { UserAssignedIdentity } from "@podidentity/testbed";
import { canonicalizeTarget } from "../src/server/canonical-path";
import { ProxyAllowlist } from "../src/server/proxy-allowlist";
import { parseRequestTarget } from "../src/server/request-route";
import { Cluster, KV } from "./helpers/cluster";
import { spellingsOf } from "./helpers/path-corpus";
import { RecordingUpstream, isImdsErrorShape, jwtClaims, parseRawAnswer, type RawAnswer } from "./helpers/raw-http";

// Issue 12: `/x/../metadata/identity/oauth2/token?client_id=<any>` was proxied and normalised into a clean token
// request, so any pod got any identity of the node. These tests send generated spellings over raw sockets (no
// client normalisation) and check what the pods got and what the node's IMDS received.

const BOUND = "127.0.21.1";
const UNLABELLED = "127.0.21.2";
const TOKEN = "/metadata/identity/oauth2/token";
const BASES = [TOKEN, "/metadata/instance/compute", "/metadata/identity/info", "/metadata/instance/compute/userData"];

let c: Cluster;
let recorder: RecordingUpstream;
let mine: UserAssignedIdentity;
let other: UserAssignedIdentity;

beforeAll(async () => {
  c = await Cluster.start();
  mine = c.cloud.createUserAssignedIdentity("kv-reader");
  other = c.cloud.createUserAssignedIdentity("payments-admin");
  c.assignOnVm(mine);
  c.assignOnVm(other);
  c.identity("shop", "kv-reader", mine, { selector: "web" });
  c.identity("shop", "payments-admin", other);
  c.pod("web-1", BOUND, { namespace: "shop", label: "web" });
  c.pod("loner", UNLABELLED, { namespace: "shop" });
  c.assigned({ name: "web-1", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Assigned");
  recorder = await new RecordingUpstream(c.imds.url).start();
  // Proxy rate limits lifted: every spelling the allowlist passes must reach the (recorded) upstream.
  await c.startNmi({ upstreamImds: recorder.url, proxyRequestsPerSecondPerPod: 1e6, proxyBurstPerPod: 1e6, proxyRequestsPerSecond: 1e6, proxyBurst: 1e6 });
}, 60_000);
afterAll(async () => {
  await c.close();
  await recorder.close();
});

/** Every n-th spelling plus the first 40 (the single rewrites): a deterministic sample of the corpus. */
function sample(all: string[], size: number): string[] {
  const step = Math.max(1, Math.floor(all.length / size));
  return [...new Set([...all.slice(0, 40), ...all.filter((_, i) => i % step === 0)])];
}

async function send(ip: string, target: string): Promise<RawAnswer> {
  const raw = await c.raw(ip, `GET ${target} HTTP/1.1\r\nhost: 169.254.169.254\r\nmetadata: true\r\nconnection: close\r\n\r\n`);
  const answer = parseRawAnswer(raw);
  if (answer === undefined) throw new Error(`no HTTP answer for ${target}: ${JSON.stringify(raw.slice(0, 200))}`);
  return answer;
}

async function pool<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let i = next++; i < items.length; i = next++) await work(items[i]!);
  }));
}

/** How the node's IMDS (the emulator parses targets with WHATWG URL, as most servers do) reads a target. */
function imdsPath(target: string): string {
  try {
    return new URL(target, "http://169.254.169.254").pathname.toLowerCase();
  } catch {
    return ""; // no server would take it for a path
  }
}

async function upstreamImdsCalls(): Promise<number> {
  const m = await c.nmi!.metrics.upstreamCalls.get();
  return m.values.filter((v) => v.labels["target"] === "imds").reduce((sum, v) => sum + v.value, 0);
}

describe("every spelling of a path", () => {
  it("no spelling is both proxied and read by IMDS as an identity path (whole corpus, classification only)", () => {
    const allowlist = new ProxyAllowlist({ blockInstanceMetadata: false, allowImdsRoutes: ["user-data", "attested-document", "scheduled-events-ack"] });
    let checked = 0;
    for (const base of BASES) {
      for (const spelling of spellingsOf(base)) {
        const t = parseRequestTarget(spelling);
        if (imdsPath(spelling).replace(/\/$/, "") === TOKEN) expect([`token`, `malformed-token`, `identity`, `metadata`], spelling).toContain(t.route);
        if (t.route !== "metadata") continue;
        const decision = allowlist.decide(t.path, "GET", t.ambiguous);
        if (decision.action !== "proxy") continue;
        checked++;
        // What goes on the wire is the canonical path: a fixed point that no server reads differently.
        expect(canonicalizeTarget(t.path).path, spelling).toBe(t.path);
        expect(t.path, spelling).toMatch(/^(\/[A-Za-z0-9._~-]+)+\/?$/);
        expect(imdsPath(t.path).startsWith("/metadata/identity"), spelling).toBe(false);
      }
    }
    expect(checked).toBeGreaterThan(100);
  });

  it("over raw sockets, for an unlabelled and a bound pod asking for another identity: never that identity's token, and IMDS sees only NMI's own token calls", async () => {
    const targets: string[] = [];
    const queries = [
      `api-version=2021-02-01&resource=${encodeURIComponent(KV)}&client_id=${other.clientId}`,
      `api-version=2021-02-01&resource=${encodeURIComponent(KV)}&msi_res_id=${encodeURIComponent(other.id)}`,
      `api-version=2021-02-01&resource=${encodeURIComponent(KV)}`,
    ];
    for (const base of BASES) {
      sample(spellingsOf(base), base === TOKEN ? 400 : 120).forEach((spelling, i) => targets.push(`${spelling}?${queries[i % queries.length]}`));
    }
    const tokensServed: Array<{ ip: string; target: string; claims: Record<string, unknown>; clientId: unknown }> = [];
    const problems: string[] = [];
    const statuses = new Map<string, number>();
    const jobs = targets.flatMap((target) => [BOUND, UNLABELLED].map((ip) => ({ ip, target })));
    await pool(jobs, 6, async ({ ip, target }) => {
      const a = await send(ip, target);
      statuses.set(`${a.status}`, (statuses.get(`${a.status}`) ?? 0) + 1);
      if (a.headers["x-podidentity-nmi"] !== "0.1.0") problems.push(`${target}: no NMI header`);
      // NMI's own answers have error and error_description; IMDS's own, passed through (e.g. its 404 for
      // `compute/`), have at least `error`.
      const fromImds = recorder.requests.length > 0 && typeof a.body?.error === "string" && !a.body.error.startsWith("podidentity_");
      if (a.status !== 200 && !isImdsErrorShape(a) && !fromImds) problems.push(`${target}: ${a.status} not IMDS-shaped: ${a.text.slice(0, 100)}`);
      if (a.text.includes(other.clientId) || a.text.includes(other.principalId)) problems.push(`${ip} ${target}: answer names the other identity`);
      const token = (a.body as { access_token?: unknown } | undefined)?.access_token;
      if (a.status === 200 && typeof token === "string") tokensServed.push({ ip, target, claims: jwtClaims(token), clientId: a.body.client_id });
    });
    expect(problems).toEqual([]);
    // The only tokens: the bound pod's own identity, answered by NMI's token route (spellings without a selector).
    expect(tokensServed.length).toBeGreaterThan(0);
    for (const t of tokensServed) {
      expect(t.ip, t.target).toBe(BOUND);
      expect(t.claims["appid"], t.target).toBe(mine.clientId);
      expect(t.claims["oid"], t.target).toBe(mine.principalId);
      expect(t.clientId, t.target).toBe(mine.clientId);
    }
    // What the node's IMDS received on identity paths is exactly what NMI's own token source sent.
    const identityCalls = recorder.requests.filter((r) => imdsPath(r.url).startsWith("/metadata/identity"));
    expect(identityCalls.length).toBe(await upstreamImdsCalls());
    for (const r of identityCalls) {
      expect(r.url.startsWith(`${TOKEN}?`), r.url).toBe(true);
      expect(new URL(r.url, "http://imds").searchParams.get("client_id")).toBe(mine.clientId);
    }
    // Everything else it received was on the allowlist, spelled canonically.
    for (const r of recorder.requests) {
      const path = r.url.split("?")[0]!;
      expect(canonicalizeTarget(path).path, r.url).toBe(path);
      const lower = path.toLowerCase();
      expect(lower.startsWith("/metadata/instance/") || lower.startsWith(TOKEN), r.url).toBe(true);
      expect(/^\/metadata\/instance\/compute\/userdata(\/|$)/.test(lower), r.url).toBe(false);
    }
    // The corpus did exercise the proxy (instance spellings) as well as refusals.
    expect(recorder.requests.length).toBeGreaterThan(identityCalls.length);
    expect([...statuses.keys()].sort()).toEqual(expect.arrayContaining(["200", "400", "403", "404"]));
  }, 180_000);
});
