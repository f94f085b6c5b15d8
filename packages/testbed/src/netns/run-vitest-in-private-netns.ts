import { once } from "node:events";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { spawnInPrivateNetns } from "./private-netns";

/** One test's result from vitest's JSON report. */
export interface InnerTestResult {
  title: string;
  ancestorTitles: string[];
  status: string;
  failureMessages: string[];
}

export interface InnerVitestRun {
  /** Every test of the inner run; empty when it produced no report. */
  results: InnerTestResult[];
  /** What the inner vitest printed, for failure messages. */
  output: string;
  code: number | null;
  /** The run was stopped at its deadline (then `results` is usually empty: vitest writes its report at the end). */
  timedOut: boolean;
}

export interface RunVitestInPrivateNetnsOptions {
  /** The package folder vitest runs in. */
  cwd: string;
  /** The vitest config selecting the inner (`*.netns.ts`) files, relative to `cwd`. */
  config: string;
  /** Test-file filters passed on to vitest. */
  filters?: readonly string[];
  /** A hung inner run is stopped (SIGTERM, then killed) after this long, so it fails the outer file, not hangs it. */
  deadlineMs: number;
}

/**
 * Runs vitest inside a fresh private network namespace and collects its per-test results. A Node process cannot
 * enter a network namespace itself, so suites on real kernel networking keep their tests in files that an outer
 * test file runs this way and then reports one by one.
 */
export async function runVitestInPrivateNetns(options: RunVitestInPrivateNetnsOptions): Promise<InnerVitestRun> {
  const dir = await mkdtemp(join(tmpdir(), "podid-inner-vitest-"));
  const reportFile = join(dir, "report.json");
  const vitest = join(dirname(createRequire(join(options.cwd, "package.json")).resolve("vitest/package.json")), "vitest.mjs");
  try {
    const { child, stop } = spawnInPrivateNetns(
      process.execPath,
      [vitest, "run", "--config", options.config, "--reporter=default", "--reporter=json", `--outputFile.json=${reportFile}`, ...(options.filters ?? [])],
      { stdio: ["ignore", "pipe", "pipe"], cwd: options.cwd, env: { ...process.env, NO_COLOR: "1" } },
    );
    let output = "";
    child.stdout?.on("data", (d: Buffer) => (output += String(d)));
    child.stderr?.on("data", (d: Buffer) => (output += String(d)));
    let timedOut = false;
    const deadline = setTimeout(() => {
      timedOut = true;
      output += `\n[runVitestInPrivateNetns] stopped: the inner run passed its deadline of ${Math.round(options.deadlineMs / 1000)} s\n`;
      void stop("SIGTERM", 10_000);
    }, options.deadlineMs);
    const [code] = (await once(child, "close")) as [number | null];
    clearTimeout(deadline);
    const report = await readFile(reportFile, "utf8").then(
      (text) => JSON.parse(text) as { testResults: { assertionResults: InnerTestResult[] }[] },
      () => undefined,
    );
    return { results: report?.testResults.flatMap((file) => file.assertionResults) ?? [], output, code, timedOut };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
