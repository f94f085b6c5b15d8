// The abuse part of NMI's benchmark (issue 12): NMI with its default listener settings against
// A. 3,000 idle connections (above the default cap of 1,024), kept up by an attacker that reopens every connection
//    NMI closes, while pods' token requests are measured (a new connection each: the worst case under eviction);
// B. 100,000 fuzzed requests over raw sockets (generated methods, targets, versions and headers, from known pods'
//    and unknown addresses), each answer checked for IMDS's shape and NMI's header;
// with NMI's RSS (before, peak, after) and open file descriptors sampled from /proc.
import { readdir, readFile } from "node:fs/promises";
import { connect, type Socket } from "node:net";

export interface AbuseChild {
  url: string;
  pid: number;
}

export interface AbuseOptions {
  nmi: AbuseChild;
  /** Source addresses of pods with a bound identity (their token is cached by NMI after the first request). */
  podIps: readonly string[];
  idleConnections?: number;
  fuzzRequests?: number;
}

export interface IdleResult {
  connections: number;
  /** Undefined: the attacker holds its connections and does not reopen those NMI closes. */
  reopenDelayMs: number | undefined;
  seconds: number;
  requests: number;
  failures: number;
  failureStatuses: Record<string, number>;
  p50: number;
  p99: number;
  max: number;
  within100ms: number;
  attackerConnectionsOpened: number;
  peakFds: number;
}

export interface AbuseResult {
  /** 3,000 idle connections held; then the same with every closed one reopened after 1 s (connection churn). */
  idle: IdleResult;
  churn: IdleResult;
  fuzz: {
    requests: number;
    seconds: number;
    nonImdsShaped: number;
    noAnswer: number;
    examples: string[];
    statuses: Record<string, number>;
  };
  /** NMI's RSS before the abuse, its peak through both parts, and 10 s after both ended. */
  rss: { beforeMb: number; afterFuzzMb: number; peakMb: number; afterMb: number };
}

const KV = "https://vault.azure.net";

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

async function fdCount(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

/** Samples a value every `everyMs` until stopped; returns the maximum seen. */
function sampler(read: () => Promise<number>, everyMs: number): { stop: () => Promise<number> } {
  let max = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      max = Math.max(max, await read().catch(() => 0));
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return max;
    },
  };
}

/** Everything a server writes on one connection until it closes it (or `timeoutMs`). */
function exchange(port: number, localAddress: string, text: string | Buffer, timeoutMs: number): Promise<{ out: string; ms: number }> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = connect({ host: "127.0.0.1", port, localAddress }, () => socket.write(text));
    let out = "";
    socket.setEncoding("latin1");
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on("data", (d: string) => (out += d));
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ out, ms: performance.now() - started });
    });
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

// ---- A. idle connections ----

async function idleFlood(o: Required<AbuseOptions>, reopenDelayMs: number | undefined, seconds: number): Promise<IdleResult> {
  const port = Number(new URL(o.nmi.url).port);
  let stopping = false;
  let opened = 0;
  const sockets = new Set<Socket>();
  // Attacker addresses: 250 connections per source address keeps well inside one address's port range.
  const attacker = (i: number): string => `127.3.${Math.floor(i / 250)}.1`;
  const open = (i: number): void => {
    if (stopping) return;
    const s = connect({ host: "127.0.0.1", port, localAddress: attacker(i) });
    opened++;
    sockets.add(s);
    s.on("error", () => undefined);
    s.on("close", () => {
      sockets.delete(s);
      if (!stopping && reopenDelayMs !== undefined) setTimeout(() => open(i), reopenDelayMs).unref();
    });
  };
  for (let i = 0; i < o.idleConnections; i++) open(i);
  await new Promise((r) => setTimeout(r, 2_000));
  const fds = sampler(() => fdCount(o.nmi.pid), 500);
  const latencies: number[] = [];
  const failureStatuses: Record<string, number> = {};
  let failures = 0;
  const until = performance.now() + seconds * 1000;
  let n = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (performance.now() < until) {
        const ip = o.podIps[n++ % o.podIps.length]!;
        const { out, ms } = await exchange(port, ip, `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=${encodeURIComponent(KV)} HTTP/1.1\r\nhost: 169.254.169.254\r\nmetadata: true\r\nconnection: close\r\n\r\n`, 10_000);
        latencies.push(ms);
        const status = /^HTTP\/1\.1 (\d{3})/.exec(out)?.[1] ?? "no answer";
        if (status !== "200") {
          failures++;
          failureStatuses[status] = (failureStatuses[status] ?? 0) + 1;
        }
        await new Promise((r) => setTimeout(r, 150));
      }
    }),
  );
  const peakFds = await fds.stop();
  stopping = true;
  for (const s of sockets) s.destroy();
  latencies.sort((a, b) => a - b);
  return {
    connections: o.idleConnections,
    reopenDelayMs,
    seconds,
    requests: latencies.length,
    failures,
    failureStatuses,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies[latencies.length - 1] ?? 0,
    within100ms: latencies.filter((l) => l <= 100).length,
    attackerConnectionsOpened: opened,
    peakFds,
  };
}

// ---- B. fuzzing ----

/** mulberry32: a seeded PRNG, so every run sends the same 100k requests. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const METHODS = ["GET", "GET", "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT", "get", "G@T", "M-SEARCH", "PROPFIND"];
const SEGMENTS = ["metadata", "METADATA", "identity", "oauth2", "token", "instance", "compute", "userData", "attested", "document", "scheduledevents", "versions", "loadbalancer", "host", "info", "..", ".", "%2e%2e", "%2E", ".%2e", "", "x;y", "%2f", "%5c", "\\", "%00", "%zz", "%c0%ae", "ü", "*", "x"];
const QUERIES = [
  "",
  `api-version=2018-02-01&resource=${encodeURIComponent(KV)}`,
  `api-version=2018-02-01&resource=${encodeURIComponent(KV)}&client_id=00000000-0000-0000-0000-000000000001`,
  "api-version=2021-02-01",
  "api-version=2021-02-01&format=text",
  "resource=",
  "a=%ZZ&b=%2e%2e/../",
];

export function fuzzRequest(rand: () => number, podIps: readonly string[]): { ip: string; text: string } {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const ip = rand() < 0.05 ? `127.4.${Math.floor(rand() * 200)}.${1 + Math.floor(rand() * 200)}` : pick(podIps);
  const segments = Array.from({ length: Math.floor(rand() * 7) }, () => pick(SEGMENTS));
  let path = `/${segments.join("/")}`;
  const r = rand();
  if (r < 0.05) path = `http://169.254.169.254${path}`;
  else if (r < 0.07) path = "*";
  else if (r < 0.08) path = `/${"a".repeat(Math.floor(rand() * 8000))}`;
  else if (r < 0.1) path = segments.join("/");
  const query = pick(QUERIES);
  const target = `${path}${query ? `?${query}` : ""}`;
  const method = pick(METHODS);
  const v = rand();
  const version = v < 0.9 ? " HTTP/1.1" : v < 0.95 ? " HTTP/1.0" : v < 0.97 ? "" : v < 0.99 ? " HTTP/2.0" : " HTTP/1.2";
  const headers: string[] = [];
  const hosts = rand() < 0.9 ? 1 : rand() < 0.5 ? 0 : 2;
  for (let i = 0; i < hosts; i++) headers.push(`host: ${i === 0 ? "169.254.169.254" : "evil.example"}`);
  if (rand() < 0.8) headers.push(`metadata: ${rand() < 0.9 ? "true" : "false"}`);
  if (rand() < 0.05) headers.push("upgrade: websocket", "connection: upgrade");
  if (rand() < 0.03) headers.push("expect: 100-continue");
  if (rand() < 0.03) headers.push("x-forwarded-for: 10.0.0.1");
  if (rand() < 0.02) headers.push(`x-big: ${"b".repeat(20_000)}`);
  if (rand() < 0.02) headers.push("bad header line");
  if (rand() < 0.02) headers.push("x-ctl: a\x01b");
  if (rand() < 0.02) headers.push(" folded: continuation");
  for (let i = Math.floor(rand() * 4); i > 0; i--) headers.push(`x-${Math.floor(rand() * 1e6).toString(36)}: ${Math.floor(rand() * 1e9).toString(36)}`);
  let body = "";
  const b = rand();
  if (b < 0.05) {
    headers.push("transfer-encoding: chunked");
    body = rand() < 0.5 ? "5\r\nhello\r\n0\r\n\r\n" : "zz\r\nnot a chunk\r\n";
  } else if (b < 0.1) {
    const payload = "x".repeat(Math.floor(rand() * 200));
    headers.push(`content-length: ${payload.length}`);
    if (rand() < 0.2) headers.push(`content-length: ${payload.length + 1}`);
    body = payload;
  }
  headers.push("connection: close");
  return { ip, text: `${method} ${target}${version}\r\n${headers.join("\r\n")}\r\n\r\n${body}` };
}

/** Checks every final answer on a connection: NMI's header and IMDS's JSON shape (HEAD and 1xx have no body). */
function checkAnswers(out: string, method: string): { ok: boolean; statuses: string[]; why?: string } {
  const parts = out.split(/(?=HTTP\/1\.[01] \d{3} )/).filter((p) => /^HTTP\/1\.[01] \d{3} /.test(p));
  const finals = parts.filter((p) => !/^HTTP\/1\.[01] 1\d\d /.test(p));
  if (finals.length === 0) return { ok: false, statuses: [], why: out === "" ? "no answer" : `not HTTP: ${JSON.stringify(out.slice(0, 80))}` };
  const statuses: string[] = [];
  for (const part of finals) {
    const end = part.indexOf("\r\n\r\n");
    const head = part.slice(0, end < 0 ? part.length : end).toLowerCase();
    const status = /^http\/1\.[01] (\d{3})/.exec(head)![1]!;
    statuses.push(status);
    if (!head.includes("\r\nx-podidentity-nmi: ")) return { ok: false, statuses, why: `${status} without NMI's header` };
    if (method === "HEAD" && finals.length === 1) continue;
    const body = end < 0 ? "" : part.slice(end + 4);
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      return { ok: false, statuses, why: `${status} body not JSON: ${JSON.stringify(body.slice(0, 80))}` };
    }
    const shaped = typeof json === "object" && json !== null && (status === "200" || typeof (json as { error?: unknown }).error === "string");
    if (!shaped) return { ok: false, statuses, why: `${status} JSON without error: ${body.slice(0, 80)}` };
  }
  return { ok: true, statuses };
}

async function fuzz(o: Required<AbuseOptions>): Promise<AbuseResult["fuzz"]> {
  const port = Number(new URL(o.nmi.url).port);
  const rand = prng(12);
  const statuses: Record<string, number> = {};
  const examples: string[] = [];
  let nonImdsShaped = 0;
  let noAnswer = 0;
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < o.fuzzRequests) {
        next++;
        const { ip, text } = fuzzRequest(rand, o.podIps);
        const method = text.slice(0, text.indexOf(" "));
        const { out } = await exchange(port, ip, text, 40_000);
        const check = checkAnswers(out, method);
        for (const s of check.statuses) statuses[s] = (statuses[s] ?? 0) + 1;
        if (!check.ok) {
          if (check.why === "no answer") noAnswer++;
          nonImdsShaped++;
          if (examples.length < 5) examples.push(`${JSON.stringify(text.slice(0, 120))} → ${check.why}`);
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { requests: o.fuzzRequests, seconds, nonImdsShaped, noAnswer, examples, statuses };
}

export async function runAbuse(options: AbuseOptions): Promise<AbuseResult> {
  const o: Required<AbuseOptions> = { idleConnections: 3_000, fuzzRequests: Number(process.env["NMI_BENCH_FUZZ_REQUESTS"] ?? 100_000), ...options };
  // Warm each pod's token, as a running node would have it.
  const port = Number(new URL(o.nmi.url).port);
  for (const ip of o.podIps.slice(0, 20)) {
    await exchange(port, ip, `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=${encodeURIComponent(KV)} HTTP/1.1\r\nhost: x\r\nmetadata: true\r\nconnection: close\r\n\r\n`, 30_000);
  }
  const beforeMb = await rssMb(o.nmi.pid);
  const rss = sampler(() => rssMb(o.nmi.pid), 250);
  const fuzzResult = await fuzz(o);
  const afterFuzzMb = await rssMb(o.nmi.pid);
  // Held: NMI's idle timeout (15 s) must not close them during the measurement, so it runs 12 s.
  const idle = await idleFlood(o, undefined, 12);
  const churn = await idleFlood(o, 1_000, 12);
  const peakMb = await rss.stop();
  // Settle: what stays after the load is what NMI retains, not garbage not yet collected.
  await new Promise((r) => setTimeout(r, 10_000));
  const afterMb = await rssMb(o.nmi.pid);
  return { idle, churn, fuzz: fuzzResult, rss: { beforeMb, afterFuzzMb, peakMb: Math.max(peakMb, beforeMb), afterMb } };
}
