// `pnpm --filter @podidentity/sdk bench` (first of three): PodIdentityCredential against @azure/identity's
// ManagedIdentityCredential on the same loopback IMDS, one warm long-lived instance each. Prints a markdown table;
// with --record also writes it to docs/benchmarks.md under "## @podidentity/sdk".
import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import type { TokenCredential } from "@azure/core-auth";
import { ManagedIdentityCredential } from "@azure/identity";
import { PodIdentityCredential } from "@podidentity/sdk";
import { recordSubsection, runHeader } from "./record.ts";

// The loopback IMDS: answers like IMDS (numbers as strings) after a fixed latency, counts requests per resource,
// and answers the first two requests for a resource containing "throttled" with 429 and no Retry-After.
interface LoopbackImds {
  url: string;
  /** Upstream requests seen per resource. */
  counts: Map<string, number>;
  close: () => Promise<void>;
}

async function startLoopbackImds(latencyMs: number): Promise<LoopbackImds> {
  const counts = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const resource = url.searchParams.get("resource") ?? "";
    const n = (counts.get(resource) ?? 0) + 1;
    counts.set(resource, n);
    setTimeout(() => {
      if (resource.includes("throttled") && n <= 2) {
        res.writeHead(429, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: "too_many_requests", error_description: "throttled" }));
        return;
      }
      const now = Math.floor(Date.now() / 1000);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          access_token: `bench-token-${resource}-${n}`,
          refresh_token: "",
          expires_in: "86399",
          expires_on: String(now + 86399),
          not_before: String(now),
          resource,
          token_type: "Bearer",
        }),
      );
    }, latencyMs);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const CACHED_RUN_MS = 2_000;
const COLD_CALLERS = 1_000;
/** Typical NMI answer time on a quiet node. */
const UPSTREAM_LATENCY_MS = 5;

interface SideResult {
  cachedPerSecond: number;
  coldUpstream: number;
  coldWallMs: number;
  throttled: string;
}

async function cachedRate(credential: TokenCredential, scope: string): Promise<number> {
  await credential.getToken(scope);
  // Warm the JIT before measuring.
  for (let i = 0; i < 2_000; i++) await credential.getToken(scope);
  let calls = 0;
  const started = performance.now();
  const deadline = started + CACHED_RUN_MS;
  while (performance.now() < deadline) {
    for (let i = 0; i < 100; i++) await credential.getToken(scope);
    calls += 100;
  }
  return calls / ((performance.now() - started) / 1000);
}

async function measure(name: string, credential: TokenCredential, counts: Map<string, number>): Promise<SideResult> {
  const tag = name.replace(/\W/g, "");
  const cachedPerSecond = await cachedRate(credential, `https://cached-${tag}.example/.default`);

  const coldResource = `https://cold-${tag}.example`;
  const started = performance.now();
  const results = await Promise.allSettled(Array.from({ length: COLD_CALLERS }, () => credential.getToken(`${coldResource}/.default`)));
  const coldWallMs = performance.now() - started;
  const failed = results.filter((r) => r.status === "rejected").length;
  if (failed > 0) console.error(`${name}: ${failed} of ${COLD_CALLERS} cold callers failed`);

  const throttledResource = `https://throttled-${tag}.example`;
  const t0 = performance.now();
  let throttled: string;
  try {
    await credential.getToken(`${throttledResource}/.default`);
    throttled = `success (${counts.get(throttledResource)} requests, ${((performance.now() - t0) / 1000).toFixed(1)} s)`;
  } catch (error) {
    throttled = `failure: ${(error as Error).name} after ${counts.get(throttledResource)} request(s)`;
  }
  return { cachedPerSecond, coldUpstream: counts.get(coldResource) ?? 0, coldWallMs, throttled };
}

const imds = await startLoopbackImds(UPSTREAM_LATENCY_MS);
// ManagedIdentityCredential (MSAL) reads this to find IMDS; PodIdentityCredential gets the endpoint as an option.
process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = imds.url;
const ours = new PodIdentityCredential({ endpoint: imds.url });
const theirs = new ManagedIdentityCredential();

const a = await measure("podidentity", ours, imds.counts);
const b = await measure("azure-identity", theirs, imds.counts);
await ours.close();
await imds.close();

const fmt = (n: number): string => Math.round(n).toLocaleString("en-US");
const table = [
  "| scenario | @podidentity/sdk PodIdentityCredential | @azure/identity ManagedIdentityCredential | ratio |",
  "|---|---|---|---|",
  `| (a) cached getToken calls/s | ${fmt(a.cachedPerSecond)} | ${fmt(b.cachedPerSecond)} | ${(a.cachedPerSecond / b.cachedPerSecond).toFixed(1)}× faster |`,
  `| (b) ${fmt(COLD_CALLERS)} concurrent cold callers: upstream requests | ${a.coldUpstream} | ${b.coldUpstream} | ${(b.coldUpstream / Math.max(1, a.coldUpstream)).toFixed(0)}× fewer |`,
  `| (b) ${fmt(COLD_CALLERS)} concurrent cold callers: wall time | ${fmt(a.coldWallMs)} ms | ${fmt(b.coldWallMs)} ms | ${(b.coldWallMs / a.coldWallMs).toFixed(1)}× faster |`,
  `| (c) first two answers 429 without Retry-After | ${a.throttled} | ${b.throttled} | — |`,
].join("\n");

const header = [
  runHeader(),
  `Loopback IMDS answering in ${UPSTREAM_LATENCY_MS} ms; cached rate measured over ${CACHED_RUN_MS / 1000} s of sequential awaits; each side one warm, long-lived instance.`,
  `Targets: (a) ≥ 20× @azure/identity's rate, (b) exactly 1 upstream request, (c) success.`,
].join("\n\n");

console.log(`${header}\n\n${table}`);

if (process.argv.includes("--record")) {
  await recordSubsection("Cache, single-flight, throttling (bench/run.ts)", `${header}\n\n${table}`);
  console.log(`\nrecorded in docs/benchmarks.md`);
}
