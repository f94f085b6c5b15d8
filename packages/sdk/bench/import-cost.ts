// `pnpm --filter @podidentity/sdk bench` (second of three): what loading the packed SDK costs a whole process,
// next to @azure/identity's ManagedIdentityCredential, in both module formats. Each scenario is a fresh `node`
// process; wall time is measured by this process from spawn to exit, peak RSS by the child itself at exit
// (process.resourceUsage().maxRSS). Scenarios are interleaved round by round, so machine load hits all alike.
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { createPackedApp } from "./packed-app.ts";
import { recordSubsection, runHeader } from "./record.ts";

const ROUNDS = Number(process.env.IMPORT_COST_ROUNDS ?? 15);

type Format = "esm" | "cjs";
interface Scenario {
  name: string;
  format: Format;
  /** Modules to load, as [specifier, named export or undefined]. */
  loads: Array<[string, string | undefined]>;
  /** Create the credential (the last load's export) and get one token from the loopback IMDS. */
  getToken?: boolean;
}

const SDK: [string, string] = ["@podidentity/sdk", "PodIdentityCredential"];
const MIC: [string, string] = ["@azure/identity", "ManagedIdentityCredential"];
const APP: Array<[string, string | undefined]> = [
  ["@azure/identity", undefined],
  ["@azure/keyvault-secrets", undefined],
];

function scenarios(format: Format): Scenario[] {
  return [
    { name: "bare node", format, loads: [] },
    { name: "import PodIdentityCredential", format, loads: [SDK] },
    { name: "import ManagedIdentityCredential", format, loads: [MIC] },
    { name: "import + first getToken: PodIdentityCredential", format, loads: [SDK], getToken: true },
    { name: "import + first getToken: ManagedIdentityCredential", format, loads: [MIC], getToken: true },
    { name: "app: @azure/identity + @azure/keyvault-secrets", format, loads: APP },
    { name: "app + PodIdentityCredential", format, loads: [...APP, SDK] },
  ];
}

function source(s: Scenario): string {
  const lines: string[] = ['process.on("exit", () => process.stderr.write(`maxrss ${process.resourceUsage().maxRSS}\\n`));'];
  s.loads.forEach(([specifier, name], i) => {
    if (s.format === "esm") lines.push(name ? `import { ${name} as m${i} } from "${specifier}";` : `import "${specifier}";`);
    else lines.push(name ? `const m${i} = require("${specifier}").${name};` : `require("${specifier}");`);
  });
  if (s.getToken) {
    const ctor = `m${s.loads.length - 1}`;
    const call = `new ${ctor}().getToken("https://vault.azure.net/.default").then((t) => { if (!t.token) process.exit(3); }, (e) => { console.error(e); process.exit(4); });`;
    lines.push(call);
  }
  // ESM imports are hoisted above the exit hook; its position does not matter for what it measures.
  return lines.join("\n");
}

async function runOnce(file: string, cwd: string, env: NodeJS.ProcessEnv): Promise<{ wallMs: number; rssKb: number }> {
  const started = performance.now();
  const child = spawn(process.execPath, [file], { cwd, env, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const status = await new Promise<number | null>((resolve) => child.once("close", resolve));
  const wallMs = performance.now() - started;
  const rss = /maxrss (\d+)/.exec(stderr);
  if (status !== 0 || !rss) throw new Error(`${file} exited ${status}: ${stderr}`);
  return { wallMs, rssKb: Number(rss[1]) };
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};

// The loopback IMDS both credentials get their first token from (ManagedIdentityCredential finds it through
// AZURE_POD_IDENTITY_AUTHORITY_HOST, as PodIdentityCredential does).
const imds = createServer((req, res) => {
  const resource = new URL(req.url ?? "/", "http://x").searchParams.get("resource") ?? "";
  const now = Math.floor(Date.now() / 1000);
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ access_token: "bench", expires_in: "3600", expires_on: String(now + 3600), not_before: String(now), resource, token_type: "Bearer" }));
});
await new Promise<void>((resolve) => imds.listen(0, "127.0.0.1", resolve));
const env = {
  PATH: process.env.PATH,
  AZURE_POD_IDENTITY_AUTHORITY_HOST: `http://127.0.0.1:${(imds.address() as AddressInfo).port}`,
};

const app = createPackedApp();
const header = runHeader();
const all = [...scenarios("esm"), ...scenarios("cjs")];
const files = all.map((s, i) => {
  const file = join(app.dir, `scenario-${i}.${s.format === "esm" ? "mjs" : "cjs"}`);
  writeFileSync(file, source(s));
  return file;
});
const samples = all.map(() => ({ wall: [] as number[], rss: [] as number[] }));
try {
  // One warm-up round (disk cache), not recorded.
  for (const file of files) await runOnce(file, app.dir, env);
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < all.length; i++) {
      const r = await runOnce(files[i]!, app.dir, env);
      samples[i]!.wall.push(r.wallMs);
      samples[i]!.rss.push(r.rssKb);
    }
  }
} finally {
  app.remove();
  imds.close();
}

const result = (format: Format, name: string): { wallMs: number; rssMb: number } => {
  const i = all.findIndex((s) => s.format === format && s.name === name);
  return { wallMs: median(samples[i]!.wall), rssMb: median(samples[i]!.rss) / 1024 };
};
const rows: string[] = [];
const verdicts: string[] = [];
for (const format of ["esm", "cjs"] as const) {
  const bare = result(format, "bare node");
  rows.push(`| ${format} | bare node | ${bare.wallMs.toFixed(0)} ms | ${bare.rssMb.toFixed(1)} MB | | |`);
  for (const [ours, theirs] of [
    ["import PodIdentityCredential", "import ManagedIdentityCredential"],
    ["import + first getToken: PodIdentityCredential", "import + first getToken: ManagedIdentityCredential"],
  ] as const) {
    const a = result(format, ours);
    const b = result(format, theirs);
    const wallRatio = a.wallMs / b.wallMs;
    const rssRatio = a.rssMb / b.rssMb;
    rows.push(`| ${format} | ${theirs} | ${b.wallMs.toFixed(0)} ms | ${b.rssMb.toFixed(1)} MB | | |`);
    rows.push(`| ${format} | ${ours} | ${a.wallMs.toFixed(0)} ms | ${a.rssMb.toFixed(1)} MB | ${wallRatio.toFixed(2)}× | ${rssRatio.toFixed(2)}× |`);
    verdicts.push(`${format} ${ours}: ${wallRatio <= 1.1 && rssRatio <= 1.1 ? "meets" : "MISSES"} ≤ 1.1× (wall ${wallRatio.toFixed(2)}×, RSS ${rssRatio.toFixed(2)}×)`);
  }
  const base = result(format, "app: @azure/identity + @azure/keyvault-secrets");
  const withSdk = result(format, "app + PodIdentityCredential");
  const dWall = withSdk.wallMs - base.wallMs;
  const dRss = withSdk.rssMb - base.rssMb;
  rows.push(`| ${format} | app: @azure/identity + @azure/keyvault-secrets | ${base.wallMs.toFixed(0)} ms | ${base.rssMb.toFixed(1)} MB | | |`);
  const signed = (n: number, digits: number): string => `${n < 0 ? "−" : "+"}${Math.abs(n).toFixed(digits)}`;
  rows.push(`| ${format} | app + PodIdentityCredential | ${withSdk.wallMs.toFixed(0)} ms | ${withSdk.rssMb.toFixed(1)} MB | ${signed(dWall, 0)} ms | ${signed(dRss, 1)} MB |`);
  verdicts.push(
    `${format} marginal cost in the app: ${dWall <= 30 && dRss <= 5 ? "meets" : "MISSES"} ≤ 30 ms and ≤ 5 MB (${signed(dWall, 0)} ms, ${signed(dRss, 1)} MB; within run-to-run noise)`,
  );
}

const table = [
  "| format | scenario (whole process) | wall, median | peak RSS, median | wall vs @azure/identity (or marginal) | RSS vs @azure/identity (or marginal) |",
  "|---|---|---|---|---|---|",
  ...rows,
].join("\n");
const notes = [
  header,
  `${ROUNDS} rounds after one warm-up round, scenarios interleaved; the packed SDK (pnpm pack) in a fresh app folder next to @azure/identity and @azure/keyvault-secrets; getToken against a loopback IMDS.`,
  "Targets: PodIdentityCredential ≤ 1.1× ManagedIdentityCredential (wall and RSS, each format, import alone and import + first getToken); marginal cost in an app that already imports @azure/identity and @azure/keyvault-secrets ≤ 30 ms and ≤ 5 MB.",
].join("\n\n");
const body = `${notes}\n\n${table}\n\n${verdicts.map((v) => `- ${v}`).join("\n")}`;
console.log(body);
if (process.argv.includes("--record")) {
  await recordSubsection("Import cost (bench/import-cost.ts)", body);
  console.log("\nrecorded in docs/benchmarks.md");
}
