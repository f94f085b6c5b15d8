// `pnpm --filter @podidentity/nmi bench`: NMI against the testbed on loopback. Prints a markdown table; with
// --record also writes it to docs/benchmarks.md under "## @podidentity/nmi".
//
// 1. autocannon (10 connections, 5 s after a 1 s warm-up) against: a bare node:http server with a fixed token
//    JSON (the floor), NMI with a warm cache, NMI with the cache disabled (v1.8: one upstream call per request).
// 2. 250 pods, each with its own source address in 127.0.0.0/8 (undici agents with localAddress), 50 identities,
//    2 resources: 10,000 token requests → upstream calls, latency, errors; then NMI's RSS.
// 3. Abuse (bench/abuse.ts): 3,000 idle connections while token requests are measured, 100,000 fuzzed requests,
//    NMI's RSS before/peak/after.
// `--only throughput` or `--only abuse` runs one part (with --record, only that part of the section is replaced).
import { spawn, type ChildProcess } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { API_GROUP_VERSION, NODENAME_LABEL, customResourceDefinitions } from "@podidentity/api";
import { AzureCloud, KubeApiServer, renderKubeconfig, type UserAssignedIdentity } from "@podidentity/testbed";
import autocannon from "autocannon";
import { dockerfileEnv, nodeOptionsArgv } from "../../../scripts/dockerfile-env.mjs";
import { runAbuse, type AbuseResult } from "./abuse";
import { Agent, request } from "undici";

const NODE = "bench-node";
const KV = "https://vault.azure.net";
const RESOURCES = [KV, "https://storage.azure.com"];
const PODS = 250;
const IDENTITIES = 50;
const REQUESTS = 10_000;
const here = fileURLToPath(new URL(".", import.meta.url));
/**
 * The Node/V8 flags NMI runs with: its image's (the final stage's `ENV NODE_OPTIONS` in packages/nmi/Dockerfile, two
 * folders up from this bundle in node_modules/.bench), so the bench measures what ships; $NMI_BENCH_NODE_FLAGS
 * (space-separated, may be empty) instead, to compare settings.
 */
const NMI_NODE_FLAGS =
  process.env["NMI_BENCH_NODE_FLAGS"]?.split(" ").filter((f) => f !== "") ?? nodeOptionsArgv(dockerfileEnv(fileURLToPath(new URL("../../Dockerfile", import.meta.url)))["NODE_OPTIONS"] ?? "");

interface Child {
  url: string;
  pid: number;
  stop: () => Promise<void>;
}

async function startChild(script: string, env: Record<string, string> = {}): Promise<Child> {
  const flags = script.startsWith("nmi") ? NMI_NODE_FLAGS : [];
  const child: ChildProcess = spawn(process.execPath, [...flags, `${here}${script}`], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (line) resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once("exit", (code) => reject(new Error(`${script} exited with ${code}`)));
  });
  return {
    url,
    pid: child.pid!,
    stop: async () => {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

/** CPU time (user + system) a process has used, in ms, from /proc (clock ticks of 10 ms). */
async function cpuMs(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

interface Load {
  /** Server CPU per request (µs): robust to the machine's other load, unlike requests/s. */
  cpuUsPerRequest: number;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

async function cannon(server: Child, seconds = 5): Promise<Load> {
  const opts = { url: `${server.url}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=${encodeURIComponent(KV)}`, headers: { metadata: "true" }, connections: 10 };
  await autocannon({ ...opts, duration: 1 });
  const cpuBefore = await cpuMs(server.pid);
  const r = await autocannon({ ...opts, duration: seconds });
  const cpuUsPerRequest = ((await cpuMs(server.pid)) - cpuBefore) * 1000 / Math.max(1, r.requests.total);
  return { cpuUsPerRequest, rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts, non2xx: r.non2xx };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

const loadAtStart = loadavg()[0]!;

// ---- the testbed: API server with 250 pods and 50 identities, the node's VM and IMDS ----
const cloud = await AzureCloud.create();
const kube = new KubeApiServer({ tls: cloud.ca });
await kube.start();
for (const crd of customResourceDefinitions()) kube.seed(crd as never);
kube.seed({ apiVersion: "v1", kind: "Namespace", metadata: { name: "bench" } });
kube.seed({ apiVersion: "v1", kind: "Node", metadata: { name: NODE } });
const vm = cloud.addVirtualMachine(NODE);
const unlimited = await cloud.startImds(NODE, vm, { requestsPerSecond: 1_000_000, maxConcurrent: 1_000_000 });
const realLimits = await cloud.startImds(NODE, vm);
// A separate IMDS with the real limits for the 250-pod run, so its budget is not already spent by the run before.
const freshImds = await cloud.startImds(NODE, vm);
const identities: UserAssignedIdentity[] = [];
for (let i = 0; i < IDENTITIES; i++) {
  const uai = cloud.createUserAssignedIdentity(`id-${i}`);
  identities.push(uai);
  vm.applyIdentityPatch({ type: "UserAssigned", userAssignedIdentities: { [uai.id]: {} } }, cloud.registry, { effectiveAtMs: 0 });
  kube.seed({ apiVersion: API_GROUP_VERSION, kind: "AzureIdentity", metadata: { name: `id-${i}`, namespace: "bench" }, spec: { type: 0, resourceID: uai.id, clientID: uai.clientId } });
  kube.seed({ apiVersion: API_GROUP_VERSION, kind: "AzureIdentityBinding", metadata: { name: `id-${i}`, namespace: "bench" }, spec: { azureIdentity: `id-${i}`, selector: `sel-${i}` } });
}
const podIp = (i: number): string => `127.1.${Math.floor(i / 200)}.${(i % 200) + 1}`;
function addPod(name: string, ip: string, identity: number): void {
  kube.seed({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "bench", labels: { aadpodidbinding: `sel-${identity}` } },
    spec: { nodeName: NODE, containers: [{ name: "app", image: "app:1" }] },
    status: { phase: "Running", podIP: ip },
  });
  kube.seed({
    apiVersion: API_GROUP_VERSION,
    kind: "AzureAssignedIdentity",
    metadata: { name: `${name}-bench-id-${identity}`, namespace: "bench", labels: { [NODENAME_LABEL]: NODE } },
    spec: { pod: name, podNamespace: "bench", nodename: NODE },
    status: { status: "Assigned" },
  });
}
for (let i = 0; i < PODS; i++) addPod(`pod-${i}`, podIp(i), i % IDENTITIES);
// autocannon cannot bind a source address: its pod has 127.0.0.1, and the node is ::1 for these runs.
addPod("cannon", "127.0.0.1", 0);
const kubeconfig = renderKubeconfig({ server: kube.url, caPem: cloud.ca.certPem });
const nmiEnv = (o: Record<string, unknown>): Record<string, string> => ({ NMI_BENCH: JSON.stringify({ kubeconfig, nodeName: NODE, nodeAddresses: ["::1"], ...o }) });


const onlyAt = process.argv.indexOf("--only");
const only = onlyAt >= 0 ? process.argv[onlyAt + 1] : undefined;
if (only !== undefined && only !== "throughput" && only !== "abuse") throw new Error(`--only takes throughput or abuse, got ${only}`);

async function throughput(): Promise<string> {
  // ---- 1. throughput and latency ----
  // The machine is shared (2 cores, other work running): floor and warm NMI alternate in ROUNDS rounds of 3 s, the
  // ratio is taken per round (adjacent runs see similar load), and the round with the median ratio is reported.
  const ROUNDS = 5;
  const rounds: Array<{ floor: Load; warm: Load; ratio: number }> = [];
  const floor = await startChild("floor-child.js");
  let nmi = await startChild("nmi-child.js", nmiEnv({ upstreamImds: unlimited.url, tokenCacheEnabled: true }));
  for (let round = 0; round < ROUNDS; round++) {
    const fl = await cannon(floor, 3);
    const wa = await cannon(nmi, 3);
    rounds.push({ floor: fl, warm: wa, ratio: wa.rps / fl.rps });
  }
  await floor.stop();
  await nmi.stop();
  rounds.sort((a, b) => a.ratio - b.ratio);
  const median = rounds[Math.floor(ROUNDS / 2)]!;
  const floorLoad = median.floor;
  const warm = median.warm;
  const ratios = rounds.map((r) => `${Math.round(r.ratio * 100)}%`).join(", ");
  const medianOf = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const floorCpu = medianOf(rounds.map((r) => r.floor.cpuUsPerRequest));
  const warmCpu = medianOf(rounds.map((r) => r.warm.cpuUsPerRequest));
  nmi = await startChild("nmi-child.js", nmiEnv({ upstreamImds: unlimited.url, tokenCacheEnabled: false, upstreamRequestsPerSecond: 1_000_000, upstreamMaxConcurrent: 1_000 }));
  let before = unlimited.counters.requests;
  const cold = await cannon(nmi);
  const coldUpstream = unlimited.counters.requests - before;
  await nmi.stop();

  nmi = await startChild("nmi-child.js", nmiEnv({ upstreamImds: realLimits.url, tokenCacheEnabled: false }));
  const coldLimited = await cannon(nmi);
  await nmi.stop();

  // ---- 2. 250 pods with their own addresses, 50 identities, 2 resources ----
  nmi = await startChild("nmi-child.js", nmiEnv({ upstreamImds: freshImds.url, tokenCacheEnabled: true }));
  const rssIdle = await rssMb(nmi.pid);
  const agents = Array.from({ length: PODS }, (_, i) => new Agent({ localAddress: podIp(i), connections: 1 }));
  before = freshImds.counters.requests;
  const latencies: number[] = [];
  let failures = 0;
  const failureStatuses = new Map<string, number>();
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: 50 }, async () => {
      for (let n = next++; n < REQUESTS; n = next++) {
        const pod = n % PODS;
        const resource = RESOURCES[Math.floor(n / PODS) % RESOURCES.length]!;
        const t = performance.now();
        const res = await request(`${nmi.url}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=${encodeURIComponent(resource)}`, { headers: { metadata: "true" }, dispatcher: agents[pod]! });
        await res.body.text();
        latencies.push(performance.now() - t);
        if (res.statusCode !== 200) {
          failures++;
          const key = `${res.statusCode}`;
          failureStatuses.set(key, (failureStatuses.get(key) ?? 0) + 1);
        }
      }
    }),
  );
  const loadSeconds = (performance.now() - started) / 1000;
  const upstreamCalls = freshImds.counters.requests - before;
  const rssLoaded = await rssMb(nmi.pid);
  await nmi.stop();
  await Promise.all(agents.map((a) => a.close()));
  latencies.sort((a, b) => a - b);

  // ---- report ----
  const f = (n: number, d = 0): string => n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
  const pct = (warm.rps / floorLoad.rps) * 100;
  const row = (name: string, l: Load, note: string): string => `| ${name} | ${f(l.rps)} | ${f(l.p50)} ms | ${f(l.p99)} ms | ${f(l.cpuUsPerRequest)} µs | ${note} |`;
  const cpuRatio = (floorCpu / warmCpu) * 100;
  const table = [
    "| target | requests/s | p50 | p99 | server CPU per request | notes |",
    "|---|---|---|---|---|---|",
    row("bare node:http, fixed token JSON (floor)", floorLoad, "—"),
    row("NMI, warm cache", warm, `${f(pct)}% of the floor's requests/s (median of ${ROUNDS} alternating rounds; all rounds: ${ratios}); by server CPU per request (median): ${f(cpuRatio)}% of the floor's efficiency; ${warm.non2xx + warm.errors} non-2xx/errors`),
    row("NMI, cache disabled (v1.8: one upstream call per request)", cold, `${f(coldUpstream)} upstream calls in the measured 5 s; emulated IMDS with limits lifted`),
    row("NMI, cache disabled, IMDS's real budget (20/s, 5 concurrent)", coldLimited, "NMI's limiter queues to stay under the budget"),
    "",
    "| 250 pods (own source addresses), 50 identities × 2 resources | result | target |",
    "|---|---|---|",
    `| upstream IMDS calls for ${f(REQUESTS)} requests | ${f(upstreamCalls)} | = identities × resources = ${IDENTITIES * RESOURCES.length} |`,
    `| failed requests | ${f(failures)}${failures > 0 ? ` (${[...failureStatuses].map(([s, n]) => `${n}× ${s}`).join(", ")})` : ""} | 0 |`,
    `| throughput / p50 / p99 (50 in flight; p99 includes the first requests queued behind IMDS's budget: ${IDENTITIES * RESOURCES.length} distinct tokens at ≤ 18/s) | ${f(REQUESTS / loadSeconds)} req/s / ${f(percentile(latencies, 50), 2)} ms / ${f(percentile(latencies, 99), 2)} ms | — |`,
    `| NMI RSS with 250 pods and 50 identities (idle → after load) | ${f(rssIdle, 1)} MB → ${f(rssLoaded, 1)} MB | < 100 MB |`,
  ].join("\n");
  const cpu = cpus()[0]?.model.trim() ?? "unknown CPU";
  const verdict = [
    `warm ≥ 60% of floor: ${pct >= 60 ? "met" : "NOT met"} (${f(pct)}% by requests/s; ${f(cpuRatio)}% by server CPU per request)`,
    `warm p99 ≤ 10 ms: ${warm.p99 <= 10 ? "met" : "NOT met"} (${f(warm.p99)} ms)`,
    `upstream calls = ${IDENTITIES * RESOURCES.length}: ${upstreamCalls === IDENTITIES * RESOURCES.length ? "met" : "NOT met"}`,
    `RSS < 100 MB: ${rssLoaded < 100 ? "met" : "NOT met"}`,
  ].join("; ");
  const header = [
    `Run: ${new Date().toUTCString()}`,
    `Machine: ${cpus().length} cores, ${cpu}, Node ${process.version}, Linux; 1-minute load average ${loadAtStart.toFixed(1)} at the start and ${loadavg()[0]!.toFixed(1)} at the end of the run (other engineers' builds and tests share the cores, so requests/s vary between rounds). NMI, the floor server and the load generators run as separate processes; the testbed's API server and IMDS run in the load generator's process.`,
    `autocannon: 10 connections, 1 s warm-up then 5 s measured (floor vs warm NMI: ${ROUNDS} alternating rounds of 3 s, the round with the median ratio shown), token requests with \`Metadata: true\` for https://vault.azure.net. Autocannon cannot bind a source address, so its pod has 127.0.0.1 and the node is ::1 for these runs.`,
    `Targets (issue 5): warm NMI ≥ 60% of the floor's throughput with p99 ≤ 10 ms; upstream calls = identities × resources; RSS < 100 MB. This run: ${verdict}.`,
  ].join("\n\n");
  return `${header}\n\n${table}`;
}

async function abuseReport(r: AbuseResult): Promise<string> {
  const f = (n: number, d = 0): string => n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
  const i = r.idle;
  const ch = r.churn;
  const z = r.fuzz;
  const statuses = Object.entries(z.statuses)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([s, n]) => `${s}: ${f(n)}`)
    .join(", ");
  const verdict = [
    `token requests while 3,000 idle connections are held answered within 100 ms: ${i.within100ms === i.requests && i.failures === 0 ? "met" : "NOT met"} (${f(i.within100ms)} of ${f(i.requests)}, max ${f(i.max, 1)} ms; with connection churn: ${f(ch.within100ms)} of ${f(ch.requests)}, max ${f(ch.max, 1)} ms)`,
    `non-IMDS-shaped answers to fuzzing: ${z.nonImdsShaped === 0 ? "met" : "NOT met"} (${f(z.nonImdsShaped)})`,
    `RSS < 120 MB: ${r.rss.peakMb < 120 ? "met" : "NOT met"} (peak ${f(r.rss.peakMb, 1)} MB)`,
  ].join("; ");
  return [
    `Run: ${new Date().toUTCString()}; machine: ${cpus().length} cores, ${cpus()[0]?.model.trim() ?? "unknown CPU"}, Node ${process.version}; 1-minute load average ${loadavg()[0]!.toFixed(1)} at the end. NMI runs with its default listener settings (--max-connections 1024, --idle-connection-timeout 15s, proxy rate 1/s per pod and 3/s per node) and the V8 flags of its image (${NMI_NODE_FLAGS.join(" ")}). The attacker, the pods' client and the testbed share the machine's cores with NMI.`,
    "",
    `Targets (issue 12): pods answered within 100 ms while 3,000 idle connections are held; 0 non-IMDS-shaped answers to 100k fuzzed requests; RSS < 120 MB. This run: ${verdict}.`,
    "",
    "| abuse | result | target |",
    "|---|---|---|",
    ...[i, ch].flatMap((x) => [
      `| ${f(x.connections)} idle connections from attacker addresses${x.reopenDelayMs === undefined ? ", held" : `, each reopened ${f(x.reopenDelayMs)} ms after NMI closes it (churn)`} (${f(x.attackerConnectionsOpened)} opened in all), ${f(x.seconds)} s | NMI's open file descriptors peak ${f(x.peakFds)} | bounded by the cap (1,024) |`,
      `| token requests from pods meanwhile (new connection each, 4 in flight, 150 ms apart) | ${f(x.requests)} requests, ${f(x.failures)} failed${x.failures > 0 ? ` (${JSON.stringify(x.failureStatuses)})` : ""}; p50 ${f(x.p50, 1)} ms, p99 ${f(x.p99, 1)} ms, max ${f(x.max, 1)} ms | ${x.reopenDelayMs === undefined ? "all within 100 ms" : "—"} |`,
    ]),
    `| fuzzed requests over raw sockets (seeded: methods, targets, versions, headers, bodies; 5% from unknown addresses; 64 in flight) | ${f(z.requests)} in ${f(z.seconds, 1)} s; statuses ${statuses} | — |`,
    `| answers not IMDS-shaped (no NMI header, not JSON, no string \`error\`), of which no answer at all | ${f(z.nonImdsShaped)} (${f(z.noAnswer)})${z.examples.length > 0 ? `: ${z.examples.join("; ")}` : ""} | 0 |`,
    `| NMI RSS before → after fuzzing → peak → 10 s after the idle flood | ${f(r.rss.beforeMb, 1)} MB → ${f(r.rss.afterFuzzMb, 1)} MB → ${f(r.rss.peakMb, 1)} MB → ${f(r.rss.afterMb, 1)} MB | < 120 MB |`,
  ].join("\n");
}

const ABUSE_HEADING = "### Abuse: idle connections and fuzzing (issue 12)";
let throughputText: string | undefined;
let abuseText: string | undefined;
if (only !== "abuse") throughputText = await throughput();
if (only !== "throughput") {
  const nmi = await startChild("nmi-child.js", nmiEnv({ upstreamImds: freshImds.url, tokenCacheEnabled: true }));
  try {
    abuseText = await abuseReport(await runAbuse({ nmi, podIps: Array.from({ length: 20 }, (_, i) => podIp(i)) }));
  } finally {
    await nmi.stop();
  }
}
await cloud.close();
await kube.close();

for (const text of [throughputText, abuseText !== undefined ? `${ABUSE_HEADING}\n\n${abuseText}` : undefined]) if (text !== undefined) console.log(`${text}\n`);

if (process.argv.includes("--record")) {
  // This file runs from packages/nmi/node_modules/.bench/.
  const path = new URL("../../../../docs/benchmarks.md", import.meta.url);
  let doc = await readFile(path, "utf8").catch(() => "# Benchmarks\n");
  // Replace only this package's section (other packages record theirs in the same file), and in it only the parts run.
  const start = doc.indexOf("## @podidentity/nmi");
  const nextSection = start === -1 ? -1 : doc.indexOf("\n## ", start + 1);
  const old = start === -1 ? "" : doc.slice(start, nextSection === -1 ? undefined : nextSection + 1);
  const oldAbuseAt = old.indexOf(ABUSE_HEADING);
  const intro = "## @podidentity/nmi\n\n`pnpm --filter @podidentity/nmi bench` (packages/nmi/bench/run.ts; `-- --only throughput|abuse` runs one part)\n\n";
  const oldThroughput = (oldAbuseAt === -1 ? old : old.slice(0, oldAbuseAt)).replace(/^## @podidentity\/nmi\n\n`pnpm[^\n]*\n\n/, "").trimEnd();
  const oldAbuse = oldAbuseAt === -1 ? "" : old.slice(oldAbuseAt + ABUSE_HEADING.length).trim();
  const section = `${intro}${(throughputText ?? oldThroughput).trimEnd()}\n\n${ABUSE_HEADING}\n\n${(abuseText ?? oldAbuse).trimEnd()}\n`;
  if (start === -1) doc = `${doc.trimEnd()}\n\n${section}`;
  else doc = `${doc.slice(0, start)}${section}${nextSection === -1 ? "" : `\n${doc.slice(nextSection + 1)}`}`;
  await writeFile(path, doc);
  console.log("recorded in docs/benchmarks.md");
}
