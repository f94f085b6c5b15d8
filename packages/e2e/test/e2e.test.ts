// The e2e suite on real kernel networking. A Node process cannot enter a network namespace, so the scenarios live
// in *.netns.ts files that this file runs with vitest inside a fresh private network namespace (spawnInPrivateNetns
// from @podidentity/testbed: nothing touches the machine's network or /etc), then reports each of their tests here
// as a test of its own, with its failure messages. Needs root (CI runs as root); with CI=true nothing skips.
import { once } from "node:events";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { spawnInPrivateNetns } from "@podidentity/testbed";
import { describe, expect, it } from "vitest";

const isRoot = process.geteuid?.() === 0;
const ci = process.env["CI"] === "true";
const packageDir = join(import.meta.dirname, "..");
/** The whole inner run; a hung run must fail this file, not hang it. */
const INNER_RUN_DEADLINE_MS = 360_000;

interface InnerResult {
  title: string;
  ancestorTitles: string[];
  status: string;
  failureMessages: string[];
}

async function runInnerSuite(): Promise<{ results: InnerResult[]; output: string; code: number | null }> {
  const dir = await mkdtemp(join(tmpdir(), "podid-e2e-"));
  const reportFile = join(dir, "report.json");
  const vitest = join(dirname(createRequire(import.meta.url).resolve("vitest/package.json")), "vitest.mjs");
  try {
    const { child, stop } = spawnInPrivateNetns(
      process.execPath,
      // PODIDENTITY_E2E_FILTER=identities runs only the matching *.netns.ts files (while working on them)
      [vitest, "run", "--config", "test/inner.vitest.config.ts", "--reporter=default", "--reporter=json", `--outputFile.json=${reportFile}`, ...(process.env["PODIDENTITY_E2E_FILTER"] ?? "").split(",").filter(Boolean)],
      { stdio: ["ignore", "pipe", "pipe"], cwd: packageDir, env: { ...process.env, NO_COLOR: "1" } },
    );
    let output = "";
    child.stdout?.on("data", (d: Buffer) => (output += String(d)));
    child.stderr?.on("data", (d: Buffer) => (output += String(d)));
    const deadline = setTimeout(() => void stop("SIGTERM", 10_000), INNER_RUN_DEADLINE_MS);
    const [code] = (await once(child, "close")) as [number | null];
    clearTimeout(deadline);
    const report = await readFile(reportFile, "utf8").then((t) => JSON.parse(t) as { testResults: { assertionResults: InnerResult[] }[] }, () => undefined);
    return { results: report?.testResults.flatMap((f) => f.assertionResults) ?? [], output, code };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const skipReason = !isRoot && !ci ? "needs root (CI runs as root); with CI=true it runs in an unprivileged user namespace instead" : undefined;
const inner = skipReason ? undefined : await runInnerSuite();

describe("podidentity end to end (inside a private network namespace)", () => {
  if (!inner) {
    it.skip(`skipped: ${skipReason}`, () => undefined);
    return;
  }
  it("the inner run completes", () => {
    expect(inner.results.length, `inner vitest run produced no results:\n${inner.output}`).toBeGreaterThan(0);
    if (inner.results.some((r) => r.status === "failed")) console.error(inner.output);
    expect(inner.code, inner.output).toBe(inner.results.some((r) => r.status === "failed") ? 1 : 0);
  });
  for (const r of inner.results) {
    const title = [...r.ancestorTitles, r.title].join(" › ");
    if (r.status === "skipped" || r.status === "pending") {
      // Under CI nothing may skip: a skipped inner test is a failure there.
      it.skipIf(!ci)(title, () => {
        throw new Error(`skipped inside the private namespace, and CI=true forbids skips`);
      });
      continue;
    }
    it(title, () => {
      if (r.status !== "passed") throw new Error(`${r.status} inside the private namespace:\n${r.failureMessages.join("\n") || "(no message)"}`);
    });
  }
});
