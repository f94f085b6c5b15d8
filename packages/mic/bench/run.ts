// MIC benchmark (issue 6): a burst of 1,000 pods over 50 nodes in 2 VMSS with 100 identities, ARM PATCH latency
// scaled to L = 2 s (standing for ~40 s), its LRO polled with Retry-After: 1, and Azure's per-VMSS write budget
// (12 burst, 4/min) under ARM's subscription buckets (writes 200 + 10/s, reads 250 + 25/s). Then 10,000 pods over
// 500 nodes in 20 scale sets, MIC only. MIC runs as its own process (the built bin), so its CPU and RSS are its own. The same burst
// then runs under a v1.8-style scheduler (one blocking cycle over all scale sets, serially) for comparison.
// Usage: pnpm --filter @podidentity/mic bench [-- --record]
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { stripTypeScriptTypes } from "node:module";
import { createServer } from "node:net";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { API_GROUP_VERSION, customResourceDefinitions, normalizeAzureIdentity, normalizeAzureIdentityBinding } from "@podidentity/api";
import { AzureCloud, KubeApiServer, type ArmServer, type ComputeResource, type KubeObject } from "@podidentity/testbed";
import { Agent, request } from "undici";
import { dockerfileEnv, nodeOptionsArgv } from "../../../scripts/dockerfile-env.mjs";

const L_MS = 2_000;
// The scenario being run (main() sets it): the 1,000-pod burst, then 10,000 pods over 500 nodes in 20 scale sets.
let PODS = 1_000;
let NODES = 50;
let SCALE_SETS = 2;
let IDENTITIES = 100;
function useScenario(s: { pods: number; nodes: number; scaleSets: number; identities: number }): void {
  ({ pods: PODS, nodes: NODES, scaleSets: SCALE_SETS, identities: IDENTITIES } = s);
}
const here = dirname(fileURLToPath(import.meta.url));
const AAI = "azureassignedidentities.aadpodidentity.k8s.io";

interface Cluster {
  cloud: AzureCloud;
  arm: ArmServer;
  kube: KubeApiServer;
  entraUrl: string;
  scaleSets: ComputeResource[];
  appId: string;
  close(): Promise<void>;
}

async function cluster(): Promise<Cluster> {
  const cloud = await AzureCloud.create();
  const arm = await cloud.startArm({ operationDurationMs: L_MS, pollRetryAfterSeconds: 1, propagationDelayMs: 0 });
  const entra = await cloud.startEntra();
  const kube = new KubeApiServer({ tls: cloud.ca, watchHistorySize: Math.max(50_000, PODS * 8) });
  await kube.start();
  for (const crd of customResourceDefinitions()) kube.seed(crd as unknown as KubeObject);
  const scaleSets = Array.from({ length: SCALE_SETS }, (_, i) => cloud.addScaleSet(`pool${i}`));
  for (let n = 0; n < NODES; n++) {
    const vmss = scaleSets[n % SCALE_SETS]!;
    kube.seed({ apiVersion: "v1", kind: "Node", metadata: { name: `node-${n}` }, spec: { providerID: `azure://${vmss.id}/virtualMachines/${n}` } });
  }
  for (let i = 0; i < IDENTITIES; i++) {
    const uai = cloud.createUserAssignedIdentity(`uai-${i}`);
    kube.seed({ apiVersion: API_GROUP_VERSION, kind: "AzureIdentity", metadata: { name: `id-${i}`, namespace: "default" }, spec: { type: 0, resourceID: uai.id, clientID: uai.clientId } });
    kube.seed({ apiVersion: API_GROUP_VERSION, kind: "AzureIdentityBinding", metadata: { name: `b-${i}`, namespace: "default" }, spec: { azureIdentity: `id-${i}`, selector: `app-${i}` } });
  }
  const app = cloud.addServicePrincipal({ secrets: ["bench-secret"] });
  return { cloud, arm, kube, entraUrl: entra.url, scaleSets, appId: app.appId, close: async () => (await kube.close(), await cloud.close()) };
}

/** Creates the pods in 10 waves over one second; returns when the last one was created. */
async function burst(kube: KubeApiServer): Promise<number> {
  for (let p = 0; p < PODS; p++) {
    if (p > 0 && p % (PODS / 10) === 0) await new Promise((r) => setTimeout(r, 100));
    kube.seed({
      apiVersion: "v1",
      kind: "Pod",
      // Ten pods per identity, in creation order (as deployments roll out): each wave brings new identities.
      metadata: { name: `pod-${p}`, namespace: "default", labels: { aadpodidbinding: `app-${Math.floor((p * IDENTITIES) / PODS)}` } },
      spec: { nodeName: `node-${p % NODES}`, containers: [{ name: "app", image: "app:1" }] },
      status: { phase: "Running" },
    });
  }
  return Date.now();
}

/**
 * Polls every 100 ms for all pods Assigned. In place (countObjects): copying 10,000 objects 10 times a second
 * (listObjects) took two thirds of the bench process's CPU — the process that also serves MIC's API requests — and
 * tripled the 10,000-pod time it measured.
 */
async function allAssigned(kube: KubeApiServer, deadlineMs: number): Promise<number> {
  for (;;) {
    const assigned = kube.countObjects(AAI, (o) => (o as { status?: { status?: string } }).status?.status === "Assigned");
    if (assigned === PODS) return Date.now();
    if (Date.now() > deadlineMs) throw new Error(`only ${assigned}/${PODS} Assigned by the deadline`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function armCounts(c: Cluster): { patches: number[]; gets: number; polls: number; throttled: number } {
  const patches = c.scaleSets.map((s) => c.arm.calls.filter((x) => x.method === "PATCH" && x.path.toLowerCase() === s.id.toLowerCase()).length);
  return {
    patches,
    gets: c.arm.calls.filter((x) => x.method === "GET" && !x.path.includes("/operations/")).length,
    polls: c.arm.calls.filter((x) => x.method === "GET" && x.path.includes("/operations/")).length,
    throttled: c.arm.calls.filter((x) => x.status === 429).length,
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function scrape(url: string): Promise<Record<string, number>> {
  const res = await request(url);
  const text = await res.body.text();
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const m = /^(podidentity_mic_[a-z_]+)(?:\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
    if (m) out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
  }
  return out;
}

const mib = (o: Record<string, number>): Record<string, string> => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, (v / 2 ** 20).toFixed(1)]));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/**
 * The Node/V8 flags MIC's process runs with: its image's (the final stage's `ENV NODE_OPTIONS` in packages/mic/Dockerfile),
 * so the bench measures what ships; $MIC_BENCH_NODE_FLAGS (space-separated, may be empty) instead, to compare settings.
 */
const MIC_NODE_FLAGS = process.env["MIC_BENCH_NODE_FLAGS"]?.split(" ").filter(Boolean) ?? nodeOptionsArgv(dockerfileEnv(join(here, "../Dockerfile"))["NODE_OPTIONS"] ?? "");
/** MIC's program: the built bin, or $MIC_BENCH_MAIN (another build, to compare). */
const MIC_MAIN = process.env["MIC_BENCH_MAIN"] ?? join(here, "../dist/main.js");
/** How long after the last Assigned the settled RSS is sampled (after a forced full GC). */
const SETTLE_MS = 5_000;

interface RunningMic {
  child: ChildProcess;
  probe: number;
  metrics: number;
  memoryFile: string;
  /** From spawn() to the first 200 of /readyz (informers synced). */
  readyMs: number;
}

/**
 * bench/memory-probe.ts as JavaScript, written to `dir`. Preloading the .ts file itself made Node load its
 * TypeScript stripper (amaro, a WebAssembly build of SWC) into MIC's process, which MIC as shipped (dist/main.js)
 * never loads: +15–21 MiB of idle RSS in every memory row before Dec 6 2026 03:24 UTC (0–4 MiB of the settled
 * 10,000-pod RSS: the allocator reuses that memory during the burst).
 */
async function writeMemoryProbe(dir: string): Promise<string> {
  const path = join(dir, "memory-probe.mjs");
  await writeFile(path, stripTypeScriptTypes(await readFile(join(here, "memory-probe.ts"), "utf8")));
  return path;
}

/**
 * Starts MIC's built bin as its own process against the cluster (files in `dir`), with bench/memory-probe.ts
 * preloaded for the sampling point; resolves at its first /readyz 200.
 */
async function spawnMic(c: Cluster, dir: string): Promise<RunningMic> {
  const memoryProbe = await writeMemoryProbe(dir);
  await c.kube.writeKubeconfig(join(dir, "kubeconfig"));
  await writeFile(join(dir, "ca.pem"), c.cloud.ca.certPem);
  await writeFile(
    join(dir, "azure.json"),
    JSON.stringify({ cloud: "AzurePublicCloud", tenantId: c.cloud.tenantId, aadClientId: c.appId, aadClientSecret: "bench-secret", subscriptionId: c.cloud.subscriptionId, resourceGroup: c.cloud.resourceGroup }),
  );
  const [probe, metrics] = [await freePort(), await freePort()];
  const memoryFile = join(dir, "memory.json");
  const startedAt = performance.now();
  const child = spawn(
    process.execPath,
    [...MIC_NODE_FLAGS, "--expose-gc", "--import", memoryProbe, MIC_MAIN, "--kubeconfig", join(dir, "kubeconfig"), "--cloudconfig", join(dir, "azure.json"), "--arm-endpoint", c.arm.url, "--authority-host", c.entraUrl, "--http-probe-port", String(probe), "--prometheus-port", String(metrics), "--log-level", "warn"],
    { env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, "ca.pem"), MIC_BENCH_MEMORY_FILE: memoryFile }, stdio: ["ignore", "ignore", "inherit"] },
  );
  const deadline = Date.now() + 30_000;
  for (;;) {
    const status = await request(`http://127.0.0.1:${probe}/readyz`).then((r) => (r.body.dump(), r.statusCode), () => 0);
    if (status === 200) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error("MIC did not become ready");
    await sleep(5);
  }
  return { child, probe, metrics, memoryFile, readyMs: performance.now() - startedAt };
}

async function untilLeader(probe: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await request(`http://127.0.0.1:${probe}/healthz`).then((r) => r.body.text(), () => "");
    if (ok === "Active") return;
    if (Date.now() > deadline) throw new Error("MIC did not become the leader");
    await sleep(50);
  }
}

async function stopMic(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
}

/** Asks MIC's preloaded memory probe for a forced full GC and the memory after it. */
async function sampleMemory(mic: RunningMic): Promise<{ rss: number; heapUsed: number; heapTotal: number; external: number; arrayBuffers: number }> {
  await rm(mic.memoryFile, { force: true });
  mic.child.kill("SIGUSR2");
  const deadline = Date.now() + 120_000;
  for (;;) {
    const text = await readFile(mic.memoryFile, "utf8").catch(() => undefined);
    if (text !== undefined) return JSON.parse(text) as { rss: number; heapUsed: number; heapTotal: number; external: number; arrayBuffers: number };
    if (Date.now() > deadline) throw new Error("MIC's memory probe did not answer within 120 s");
    await sleep(20);
  }
}

/** Process start to /readyz 200, `runs` times against one cluster (each MIC stopped before the next starts). */
async function startToReady(runs: number): Promise<number[]> {
  const c = await cluster();
  const dir = await mkdtemp(join(tmpdir(), "mic-bench-"));
  const times: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const mic = await spawnMic(c, dir);
      times.push(mic.readyMs);
      await stopMic(mic.child);
    }
    return times;
  } finally {
    await c.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function runMic(deadlineMs = 120_000): Promise<Record<string, unknown>> {
  const c = await cluster();
  const dir = await mkdtemp(join(tmpdir(), "mic-bench-"));
  let child: ChildProcess | undefined;
  try {
    const mic = await spawnMic(c, dir);
    child = mic.child;
    await untilLeader(mic.probe);
    const idle = await sampleMemory(mic);
    const before = await scrape(`http://127.0.0.1:${mic.metrics}/metrics`);
    const lastPodMs = await burst(c.kube);
    const doneMs = await allAssigned(c.kube, Date.now() + deadlineMs);
    const after = await scrape(`http://127.0.0.1:${mic.metrics}/metrics`);
    // The sampling point for RSS: 5 s after the last Assigned, after a forced full garbage collection.
    await sleep(SETTLE_MS);
    const settled = await sampleMemory(mic);
    if (process.env["MIC_BENCH_DEBUG"]) {
      const rel = (t: number): string => ((t - lastPodMs) / 1000).toFixed(2);
      const reqs = c.kube.requests.filter((r) => r.time >= lastPodMs - 1500);
      const by = (verb: string, resource: string): number[] => reqs.filter((r) => r.verb === verb && r.resource === resource).map((r) => r.time);
      for (const [verb, resource] of [["create", "azureassignedidentities"], ["patch", "azureassignedidentities"], ["create", "events"]] as const) {
        const t = by(verb, resource);
        if (t.length) console.error(`${verb} ${resource}: ${t.length}, first ${rel(Math.min(...t))} s, last ${rel(Math.max(...t))} s`);
      }
      for (const call of c.arm.calls.filter((x) => x.method === "PATCH")) console.error(`PATCH at ${rel(call.atMs)} s`);
    }
    const counts = armCounts(c);
    return {
      seconds: (doneMs - lastPodMs) / 1000,
      patches: counts.patches.join(" / "),
      maxPatches: Math.max(...counts.patches),
      totalPatches: counts.patches.reduce((a, b) => a + b, 0),
      gets: counts.gets,
      polls: counts.polls,
      throttled: counts.throttled,
      cpuSeconds: (after["podidentity_mic_process_cpu_seconds_total"] ?? 0) - (before["podidentity_mic_process_cpu_seconds_total"] ?? 0),
      rssMiB: (after["podidentity_mic_process_resident_memory_bytes"] ?? 0) / 2 ** 20,
      startToReadyMs: mic.readyMs,
      idleRssMiB: idle.rss / 2 ** 20,
      settledRssMiB: settled.rss / 2 ** 20,
      settledHeapMiB: settled.heapUsed / 2 ** 20,
      ...(process.env["MIC_BENCH_DEBUG"] && { idle: mib(idle), settled: mib(settled) }),
    };
  } finally {
    if (child) await stopMic(child);
    await c.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * v1.8's scheduler, reduced to its shape: an event starts a cycle; the cycle snapshots every pod, creates the
 * missing AzureAssignedIdentities, then for each scale set in turn GETs it, PATCHes the additions and blocks on
 * the long-running operation, then marks that cycle's objects Assigned; 200 ms pause; repeat while work is left.
 * Kubernetes writes go straight into the store (no client QPS limit of 5 as v1.8 had): generous to v1.8.
 */
async function runV18(): Promise<Record<string, number | string>> {
  const c = await cluster();
  const dispatcher = new Agent({ connect: { ca: c.cloud.ca.certPem } });
  const { token } = await c.cloud.tokenIssuer.issue({ audience: "https://management.azure.com/", tenantId: c.cloud.tenantId, objectId: "00000000-0000-0000-0000-0000000000b1", appId: c.appId });
  const arm = async (method: "GET" | "PATCH", url: string, body?: unknown): Promise<{ status: number; headers: Record<string, unknown>; json: Record<string, unknown> }> => {
    for (;;) {
      const res = await request(url, { method, dispatcher, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
      const json = (await res.body.json()) as Record<string, unknown>;
      if (res.statusCode === 429) {
        await new Promise((r) => setTimeout(r, Number(res.headers["retry-after"] ?? 5) * 1000));
        continue;
      }
      return { status: res.statusCode, headers: res.headers, json };
    }
  };
  const vmssOfNode = (node: string): ComputeResource => c.scaleSets[Number(node.split("-")[1]) % SCALE_SETS]!;
  const identities = new Map(c.kube.listObjects("azureidentities.aadpodidentity.k8s.io").map((o) => [(o as { metadata: { name: string } }).metadata.name, normalizeAzureIdentity(o).object]));
  const bindings = c.kube.listObjects("azureidentitybindings.aadpodidentity.k8s.io").map((o) => normalizeAzureIdentityBinding(o).object);
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      const pods = c.kube.listObjects("pods") as Array<{ metadata: { name: string; labels: Record<string, string> }; spec: { nodeName: string } }>;
      const existing = new Set(c.kube.listObjects(AAI).map((o) => (o as { metadata: { name: string } }).metadata.name));
      const todo: Array<{ name: string; node: string; resourceId: string }> = [];
      for (const pod of pods) {
        const binding = bindings.find((b) => b.spec.selector === pod.metadata.labels["aadpodidbinding"])!;
        const identity = identities.get(binding.spec.azureIdentity!)!;
        const name = `${pod.metadata.name}-default-${identity.metadata.name}`;
        if (existing.has(name)) continue;
        todo.push({ name, node: pod.spec.nodeName, resourceId: identity.spec.resourceID! });
        c.kube.seed({ apiVersion: API_GROUP_VERSION, kind: "AzureAssignedIdentity", metadata: { name, namespace: "default" }, spec: { pod: pod.metadata.name, podNamespace: "default", nodename: pod.spec.nodeName }, status: { status: "Created" } });
      }
      if (todo.length === 0) {
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      for (const vmss of c.scaleSets) {
        const mine = todo.filter((t) => vmssOfNode(t.node) === vmss);
        if (mine.length === 0) continue;
        const url = `${c.arm.url}${vmss.id}?api-version=2019-12-01`;
        const current = await arm("GET", url);
        const held = Object.keys(((current.json["identity"] ?? {}) as { userAssignedIdentities?: object }).userAssignedIdentities ?? {}).map((k) => k.toLowerCase());
        const adds = [...new Set(mine.map((t) => t.resourceId.toLowerCase()))].filter((id) => !held.includes(id));
        for (let i = 0; i < adds.length; i += 150) {
          const chunk = Object.fromEntries(adds.slice(i, i + 150).map((id) => [id, {}]));
          const res = await arm("PATCH", url, { identity: { type: "UserAssigned", userAssignedIdentities: chunk } });
          const poll = String(res.headers["azure-asyncoperation"]);
          for (;;) {
            await new Promise((r) => setTimeout(r, 1_000));
            const status = await arm("GET", poll);
            if (status.json["status"] !== "InProgress") break;
          }
        }
        for (const t of mine) c.kube.patchObject(AAI, "default", t.name, { status: { status: "Assigned" } });
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  try {
    await new Promise((r) => setTimeout(r, 100));
    const cpuBefore = process.cpuUsage();
    const lastPodMs = await burst(c.kube);
    const doneMs = await allAssigned(c.kube, Date.now() + 300_000);
    const cpu = process.cpuUsage(cpuBefore);
    void cpu;
    const counts = armCounts(c);
    return { seconds: (doneMs - lastPodMs) / 1000, patches: counts.patches.join(" / "), maxPatches: Math.max(...counts.patches), gets: counts.gets, polls: counts.polls, throttled: counts.throttled };
  } finally {
    stop = true;
    await loop;
    await dispatcher.close();
    await c.close();
  }
}

/** Desired-state CPU, measured in a fresh process (as in MIC's own, whose heap holds no emulators). */
async function desiredStateCpu(): Promise<{ coldMs: number; fullMs: number; podEventUs: number; bindingEventUs: number }> {
  const child = spawn(process.execPath, ["--expose-gc", join(here, "desired-state.ts")], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  if (code !== 0) throw new Error(`bench/desired-state.ts exited with ${code}`);
  return JSON.parse(out) as { coldMs: number; fullMs: number; podEventUs: number; bindingEventUs: number };
}

const fmt = (n: number, digits = 1): string => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

const SMALL = { pods: 1_000, nodes: 50, scaleSets: 2, identities: 100 };
const LARGE = { pods: 10_000, nodes: 500, scaleSets: 20, identities: 100 };

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const load = (): string => loadavg().map((l) => l.toFixed(2)).join(", ");

/** `-- --only start,burst,large` runs those parts and prints their figures as JSON (parts: ds, start, burst, v18, large). */
async function only(parts: string[]): Promise<void> {
  const out: Record<string, unknown> = {};
  for (const part of parts) {
    const loadBefore = load();
    if (part === "ds") out[part] = await desiredStateCpu();
    else if (part === "start") {
      const times = await startToReady(START_RUNS);
      out[part] = { medianMs: median(times), runsMs: times.map((t) => Math.round(t)) };
    } else if (part === "burst") out[part] = await runMic();
    else if (part === "v18") out[part] = await runV18();
    else if (part === "large") {
      useScenario(LARGE);
      out[part] = await runMic(600_000);
      useScenario(SMALL);
    } else throw new Error(`unknown part ${part} (ds, start, burst, v18, large)`);
    out[`${part} load average (before; after)`] = `${loadBefore}; ${load()}`;
  }
  console.log(JSON.stringify(out, null, 2));
}

const START_RUNS = 5;

async function main(): Promise<void> {
  const onlyAt = process.argv.indexOf("--only");
  if (onlyAt >= 0) return only(String(process.argv[onlyAt + 1] ?? "").split(","));
  const ds = await desiredStateCpu();
  const startLoad = load();
  const starts = await startToReady(START_RUNS);
  const mic = await runMic();
  const v18 = await runV18();
  useScenario(LARGE);
  const large = await runMic(600_000);
  useScenario(SMALL);
  const L = L_MS / 1000;
  const rows = [
    ["time from the last pod's creation to all 1,000 Assigned", `${fmt(Number(mic.seconds))} s (${fmt(Number(mic.seconds) / L, 2)} L)`, `${fmt(Number(v18.seconds))} s (${fmt(Number(v18.seconds) / L, 2)} L)`, "≤ 1.5 L"],
    ["ARM PATCHes per VMSS (pool0 / pool1)", String(mic.patches), String(v18.patches), "≤ 3"],
    ["ARM GETs of VMSS", String(mic.gets), String(v18.gets), "—"],
    ["ARM LRO polls", String(mic.polls), String(v18.polls), "—"],
    ["429s received", String(mic.throttled), String(v18.throttled), "0"],
    ["MIC CPU time during the burst (own process)", `${fmt(Number(mic.cpuSeconds), 2)} s`, "—", "—"],
    ["MIC RSS after the burst (at the last Assigned, from /metrics)", `${fmt(Number(mic.rssMiB), 0)} MiB`, "—", "—"],
    [`MIC RSS ${SETTLE_MS / 1000} s after the last Assigned, after a forced compacting GC (idle before the burst)`, `${fmt(Number(mic.settledRssMiB), 0)} MiB (${fmt(Number(mic.idleRssMiB), 0)} MiB); heap used ${fmt(Number(mic.settledHeapMiB), 0)} MiB`, "—", "< 160 MB"],
    [`MIC process start to /readyz 200 (median of ${START_RUNS}; all; load average ${startLoad})`, `${fmt(median(starts) / 1000, 2)} s (${starts.map((t) => fmt(t / 1000, 2)).join(", ")})`, "—", "< 1.0 s"],
    ["desired state, 10,000 pods / 1,000 bindings, full computation (CPU, median of 5 passes after 4 warm-ups; cold first pass)", `${fmt(ds.fullMs)} ms (${fmt(ds.coldMs)} ms)`, "—", "< 100 ms"],
    ["desired state, one pod event / one binding event (CPU)", `${fmt(ds.podEventUs)} µs / ${fmt(ds.bindingEventUs)} µs`, "—", "—"],
  ];
  const largeRows = [
    [`time from the last pod's creation to all ${LARGE.pods.toLocaleString("en-US")} Assigned`, `${fmt(Number(large.seconds))} s (${fmt(Number(large.seconds) / L, 2)} L)`],
    ["ARM PATCHes per scale set (max; all 20)", `${large.maxPatches}; ${large.patches}`],
    ["ARM PATCHes in all / GETs of VMSS / LRO polls", `${large.totalPatches} / ${large.gets} / ${large.polls}`],
    ["429s received", String(large.throttled)],
    ["MIC CPU time during the burst (own process)", `${fmt(Number(large.cpuSeconds), 2)} s`],
    ["MIC RSS after the burst (at the last Assigned, from /metrics)", `${fmt(Number(large.rssMiB), 0)} MiB`],
    [`MIC RSS ${SETTLE_MS / 1000} s after the last Assigned, after a forced compacting GC (target < 200 MB)`, `${fmt(Number(large.settledRssMiB), 0)} MiB; heap used ${fmt(Number(large.settledHeapMiB), 0)} MiB`],
  ];
  const table = [
    "| measure | @podidentity/mic | v1.8-style serial scheduler | target |",
    "|---|---|---|---|",
    ...rows.map((r) => `| ${r.join(" | ")} |`),
    "",
    `${LARGE.pods.toLocaleString("en-US")} pods over ${LARGE.nodes} nodes in ${LARGE.scaleSets} scale sets with ${LARGE.identities} identities (same waves, same ARM emulator and buckets):`,
    "",
    "| measure | @podidentity/mic |",
    "|---|---|",
    ...largeRows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
  console.log(table);
  if (process.argv.includes("--record")) await record(table);
}

async function record(table: string): Promise<void> {
  const path = join(here, "../../../docs/benchmarks.md");
  let doc = await readFile(path, "utf8").catch(() => "# Benchmarks\n");
  const machine = `${cpus().length} cores (nproc), ${cpus()[0]?.model.trim() ?? "unknown CPU"}, Node ${process.version}`;
  const section = [
    "## @podidentity/mic",
    "",
    "`pnpm --filter @podidentity/mic bench` (packages/mic/bench/run.ts)",
    "",
    `Run: ${new Date().toUTCString()}`,
    "",
    `Machine: ${machine}`,
    "",
    `Burst of ${PODS.toLocaleString("en-US")} pods created within one second (10 waves, 100 ms apart; ten pods per identity in creation order, so every wave brings new identities) over ${NODES} nodes in ${SCALE_SETS} VMSS with ${IDENTITIES} identities (one per pod). ARM emulator: PATCH long-running operation L = ${L_MS / 1000} s (standing for ~40 s), polled with Retry-After: 1, Azure's documented buckets: ARM per subscription and principal writes 200 refilled 10/s and reads 250 refilled 25/s, Compute per VMSS 12 refilled 4/min; a PATCH while the scale set's operation runs gets 409 Conflict. MIC runs as its own process (dist/main.js) against the testbed's Kubernetes API server and ARM/Entra emulators; the v1.8-style scheduler runs in the same run against a fresh copy of the same cluster.`,
    "",
    "The v1.8-style scheduler writes to the API server in-process, without v1.8's client QPS limit of 5 (which alone would add about 400 s for its 2,000 writes), and polls with Retry-After like MIC: its time is a lower bound for v1.8. L is the ARM emulator's operation duration; MIC's first PATCH per VMSS waits while the waves keep coming (250 ms quiet steps, at most 2 s: assignment-engine.ts #settle), so the burst takes one PATCH round trip per VMSS; what remains above 1 L is the last quiet step, the LRO poll interval (Retry-After: 1 s) and 1,000 status writes.",
    "",
    `Load average when recorded: ${loadavg().map((l) => l.toFixed(2)).join(", ")} (the machine is shared; CPU figures are process CPU time).`,
    "",
    table,
    "",
  ].join("\n");
  const start = doc.indexOf("## @podidentity/mic");
  if (start >= 0) {
    const next = doc.indexOf("\n## ", start + 1);
    doc = doc.slice(0, start) + section + (next >= 0 ? doc.slice(next + 1) : "");
  } else {
    doc = `${doc.trimEnd()}\n\n${section}`;
  }
  await writeFile(path, doc);
  console.log(`recorded in ${path}`);
}

await main();
