// `pnpm --filter @podidentity/sdk bench` (third of three): off-cluster, how long until getToken gives up with
// CredentialUnavailableError (so a ChainedTokenCredential moves on), PodIdentityCredential next to
// @azure/identity's ManagedIdentityCredential, both on the default endpoint 169.254.169.254. Each case runs in a
// fresh network namespace (`unshare --net`, root) built to refuse, drop or not route 169.254.169.254; the
// machine's own network is never touched. Time is measured inside the child around each getToken call.
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createPackedApp } from "./packed-app.ts";
import { recordSubsection, runHeader } from "./record.ts";

/** A measurement that has not ended after this long is cut (ManagedIdentityCredential sets no connect timeout). */
const CAP_MS = 60_000;
const OURS_RUNS = 3;

const CHILD = `
import { performance } from "node:perf_hooks";
import { ChainedTokenCredential, ManagedIdentityCredential } from "@azure/identity";
import { PodIdentityCredential } from "@podidentity/sdk";
const CAP_MS = ${CAP_MS};
const next = { getToken: async () => ({ token: "next", expiresOnTimestamp: Date.now() + 3600000 }) };
async function measure(make) {
  const credential = make();
  const started = performance.now();
  let outcome;
  const cap = new Promise((resolve) => setTimeout(() => resolve("cut"), CAP_MS).unref());
  const call = credential.getToken("https://vault.azure.net/.default").then(
    (t) => (t && t.token === "next" ? "moved on" : "token"),
    (e) => e.name + (e.code ? " " + e.code : ""),
  );
  outcome = await Promise.race([call, cap]);
  return { ms: Math.round(performance.now() - started), outcome };
}
const runs = Number(process.argv[2]);
const result = { ours: [], oursChain: [], mic: undefined, micChain: undefined };
for (let i = 0; i < runs; i++) {
  result.ours.push(await measure(() => new PodIdentityCredential()));
  result.oursChain.push(await measure(() => new ChainedTokenCredential(new PodIdentityCredential(), next)));
}
if (process.argv[3] === "mic") {
  result.mic = await measure(() => new ManagedIdentityCredential());
  result.micChain = await measure(() => new ChainedTokenCredential(new ManagedIdentityCredential(), next));
}
console.log(JSON.stringify(result));
process.exit(0);
`;

interface Measure {
  ms: number;
  outcome: string;
}
interface CaseResult {
  ours: Measure[];
  oursChain: Measure[];
  mic?: Measure;
  micChain?: Measure;
}

function runCase(appDir: string, script: string, setup: string[], env: NodeJS.ProcessEnv, args: string[]): Promise<CaseResult> {
  const shell = ["set -e", "ip link set lo up", ...setup, 'exec "$0" "$@"'].join("\n");
  return new Promise((resolve, reject) => {
    const child = spawn("unshare", ["--net", "--", "/bin/sh", "-c", shell, process.execPath, script, ...args], {
      cwd: appDir,
      env: { PATH: process.env.PATH, ...env },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.once("error", reject);
    child.once("close", (status) => (status === 0 ? resolve(JSON.parse(out.trim()) as CaseResult) : reject(new Error(`case exited ${status}`))));
  });
}

const CASES = [
  { name: "refused (169.254.169.254 local, nothing listens)", setup: ["ip addr add 169.254.169.254/32 dev lo"], env: {} },
  {
    name: "dropped (iptables DROP to 169.254.169.254)",
    setup: ["ip addr add 169.254.169.254/32 dev lo", "iptables -A INPUT -p tcp -d 169.254.169.254 -j DROP"],
    env: {},
  },
  { name: "no route (ENETUNREACH)", setup: [], env: {} },
  {
    name: "in a pod: refused (NMI restarting, never back)",
    setup: ["ip addr add 169.254.169.254/32 dev lo"],
    env: { KUBERNETES_SERVICE_HOST: "10.0.0.1" },
    oursOnly: true,
  },
];

const app = createPackedApp();
const header = runHeader();
const script = join(app.dir, "fail-fast.mjs");
writeFileSync(script, CHILD);
const rows: string[] = [];
const fmt = (m: Measure | undefined): string =>
  m === undefined ? "—" : m.outcome === "cut"
      ? `> ${CAP_MS / 1000} s (cut; still waiting)`
      : `${m.ms < 1000 ? `${m.ms} ms` : `${(m.ms / 1000).toFixed(2)} s`} (${m.outcome})`;
const medianOf = (ms: Measure[]): Measure => [...ms].sort((a, b) => a.ms - b.ms)[Math.floor(ms.length / 2)]!;
try {
  for (const c of CASES) {
    const oursOnly = "oursOnly" in c;
    const r = await runCase(app.dir, script, c.setup, c.env, [String(oursOnly ? 1 : OURS_RUNS), oursOnly ? "" : "mic"]);
    rows.push(`| ${c.name} | ${fmt(medianOf(r.ours))} | ${fmt(medianOf(r.oursChain))} | ${fmt(r.mic)} | ${fmt(r.micChain)} |`);
    console.error(`${c.name}: done`);
  }
} finally {
  app.remove();
}
const table = [
  "| case | PodIdentityCredential | Chained(PodIdentityCredential, next) | ManagedIdentityCredential | Chained(ManagedIdentityCredential, next) |",
  "|---|---|---|---|---|",
  ...rows,
].join("\n");
const body = [
  header,
  `Time from getToken to its end (CredentialUnavailableError, or the chain's next credential answering "moved on"); PodIdentityCredential: median of ${OURS_RUNS} runs, each a new credential; @azure/identity 4.14: one run, cut at ${CAP_MS / 1000} s. Default options, default endpoint, each case in its own network namespace.`,
  "Target: off-cluster ≤ 2 s for PodIdentityCredential and its chain; in a pod a refused connection is retried for firstContact.refusedMaxElapsedMs = 15 s.",
  table,
].join("\n\n");
console.log(body);
if (process.argv.includes("--record")) {
  await recordSubsection("Time to CredentialUnavailableError off-cluster (bench/fail-fast.ts)", body);
  console.log("\nrecorded in docs/benchmarks.md");
}
