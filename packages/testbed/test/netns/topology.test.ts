// The network-namespace topology on real kernel networking. A Node process cannot enter a network namespace, so the
// tests live in *.netns.ts files that this file runs with vitest inside a fresh private network namespace
// (spawnInPrivateNetns: nothing touches the machine's network or /etc), then reports each of them here as a test
// of its own, with its failure messages.
import { once } from "node:events";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCommand } from "../../src/netns/exec";
import { privateNetnsUnavailableReason, spawnInPrivateNetns } from "../../src/netns/private-netns";
import { runVitestInPrivateNetns } from "../../src/netns/run-vitest-in-private-netns";
import { Topology } from "../../src/netns/topology";

const isRoot = process.geteuid?.() === 0;
const ci = process.env["CI"] === "true";
const packageDir = join(import.meta.dirname, "..", "..");
/** A bound on hanging, not on speed (the run takes seconds; other suites may share the 2 cores meanwhile). */
const INNER_RUN_DEADLINE_MS = 5 * 60_000;

/** Runs the *.netns.ts files inside a private network namespace; their per-test results, or the run's output. */
function runInnerSuite() {
  return runVitestInPrivateNetns({ cwd: packageDir, config: "test/netns/inner.vitest.config.ts", deadlineMs: INNER_RUN_DEADLINE_MS });
}

const skipReason = !isRoot && !ci ? "needs root (CI runs as root); with CI=true it runs in an unprivileged user namespace instead" : undefined;
const inner = skipReason ? undefined : await runInnerSuite();

describe("network-namespace topology (run inside a private network namespace)", () => {
  if (!inner) {
    it.skip(`skipped: ${skipReason}`, () => undefined);
    return;
  }
  it("the inner run completes", () => {
    expect(inner.timedOut, `the inner run was stopped at its deadline:\n${inner.output}`).toBe(false);
    expect(inner.results.length, `inner vitest run produced no results:\n${inner.output}`).toBeGreaterThan(0);
    if (inner.results.some((r) => r.status === "failed")) console.error(inner.output);
    expect(inner.code, inner.output).toBe(inner.results.some((r) => r.status === "failed") ? 1 : 0);
  });
  for (const r of inner.results) {
    it(r.title, () => {
      if (r.status !== "passed") throw new Error(`${r.status} inside the private namespace:\n${r.failureMessages.join("\n") || "(no message)"}`);
    });
  }
});

/** PIDs (as this process sees them) of processes whose command line is exactly `argv`. */
async function pidsRunning(argv: string[]): Promise<number[]> {
  const wanted = argv.join("\0") + "\0";
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cmdline === wanted) pids.push(Number(entry));
  }
  return pids;
}

describe("entering the private network namespace", () => {
  it.skipIf(skipReason !== undefined)("a harness killed with SIGKILL leaves no process or namespace behind (the kernel ends its PID namespace)", async () => {
    const sleeper = ["sleep", `600.${process.pid}${Date.now() % 100_000}`];
    const script = `ip netns add podid-crash-n0 && exec ip netns exec podid-crash-n0 ${sleeper.join(" ")}`;
    const { child } = spawnInPrivateNetns("/bin/sh", ["-c", script], { stdio: "ignore" });
    const exited = once(child, "exit");
    await expect.poll(() => pidsRunning(sleeper), { timeout: 10_000 }).toHaveLength(1);
    expect((await runCommand("ip", ["netns", "list"])).stdout).not.toMatch(/podid-crash/);

    child.kill("SIGKILL");
    await exited;
    await expect.poll(() => pidsRunning(sleeper), { timeout: 10_000 }).toHaveLength(0);
  });

  it.skipIf(skipReason !== undefined)("stop() lets the command inside shut down on SIGTERM (unshare itself ignores it)", async () => {
    const script = "trap 'echo clean shutdown; exit 4' TERM; echo started; while :; do sleep 0.05; done";
    const { child, stop } = spawnInPrivateNetns("/bin/sh", ["-c", script], { stdio: ["ignore", "pipe", "inherit"] });
    let output = "";
    child.stdout?.on("data", (d: Buffer) => (output += String(d)));
    await expect.poll(() => output, { timeout: 10_000 }).toContain("started");
    const closed = once(child, "close");
    await stop("SIGTERM", 5_000);
    const [code] = (await closed) as [number | null];
    expect(output).toContain("clean shutdown");
    expect(code).toBe(4);
  });

  it("Topology.create refuses to run outside a private network namespace", async () => {
    await expect(Topology.create()).rejects.toMatchObject({ code: "NOT_IN_PRIVATE_NETNS" });
  });

  it("mode \"root\" is available exactly when the effective user is root, and says why not otherwise", () => {
    if (isRoot) expect(privateNetnsUnavailableReason("root")).toBeUndefined();
    else expect(privateNetnsUnavailableReason("root")).toMatch(/effective user to be root/);
  });
});
