// Writes one subsection ("### title") of docs/benchmarks.md's "## @podidentity/sdk" section, leaving the rest of
// the file (other packages' sections, the SDK's other subsections) as it is.
import { readFile, writeFile } from "node:fs/promises";
import { execSync } from "node:child_process";
import { cpus, loadavg } from "node:os";

const SECTION = "## @podidentity/sdk";
const INTRO = `${SECTION}\n\n\`pnpm --filter @podidentity/sdk bench\` (packages/sdk/bench/: run.ts, import-cost.ts, fail-fast.ts)\n`;

export function machine(): string {
  const model = cpus()[0]?.model.trim() ?? "unknown CPU";
  const nproc = execSync("nproc").toString().trim();
  return `${nproc} cores (nproc), ${model}, Node ${process.version}`;
}

/** Run date, machine, and the 1-minute load average at the start (other jobs share this machine). */
export function runHeader(): string {
  return `Run: ${execSync("date -u").toString().trim()}\n\nMachine: ${machine()}; load average at start ${loadavg()[0]!.toFixed(2)}`;
}

export async function recordSubsection(title: string, body: string): Promise<void> {
  const path = new URL("../../../docs/benchmarks.md", import.meta.url);
  let doc = await readFile(path, "utf8").catch(() => "# Benchmarks\n");
  const sub = `### ${title}\n\n${body.trim()}\n`;
  let start = doc.indexOf(SECTION);
  if (start === -1) {
    doc = `${doc.trimEnd()}\n\n${INTRO}`;
    start = doc.indexOf(SECTION);
  }
  const nextSection = doc.indexOf("\n## ", start + 1);
  const end = nextSection === -1 ? doc.length : nextSection + 1;
  let section = doc.slice(start, end);
  // Older runs wrote the section without subsections: start it afresh.
  if (!section.startsWith(INTRO)) section = INTRO;
  const at = section.indexOf(`### ${title}\n`);
  if (at === -1) {
    section = `${section.trimEnd()}\n\n${sub}`;
  } else {
    const next = section.indexOf("\n### ", at + 1);
    section = `${section.slice(0, at)}${sub}${next === -1 ? "" : `\n${section.slice(next + 1)}`}`;
  }
  doc = `${doc.slice(0, start)}${section.trimEnd()}\n${end < doc.length ? `\n${doc.slice(end)}` : ""}`;
  await writeFile(path, doc);
}
