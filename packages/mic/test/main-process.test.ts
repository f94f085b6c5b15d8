import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const packageDir = resolve(import.meta.dirname, "..");
// Built into dist-test, not dist: other packages' tests (install, e2e) may be running dist/main.js meanwhile. One
// level below the package, so main.ts finds ../package.json as it does from dist.
const MAIN = resolve(packageDir, "dist-test/main.js");

beforeAll(async () => {
  await run("pnpm", ["exec", "tsup", "src/main.ts", "--no-config", "--format", "esm", "--target", "node22", "--out-dir", "dist-test", "--silent"], { cwd: packageDir });
}, 120_000);

/** v1.8.17 chart 4.1.x's mic-deployment.yaml with every value set, as the kubelet passes them. */
const V18_CHART_MIC_ARGS = [
  "--cloudconfig=/nonexistent/azure.json",
  "--logtostderr",
  "--log-format=json",
  "-v=2",
  "--leader-election-instance=mic-7d9f-0",
  "--leader-election-namespace=kube-system",
  "--leader-election-name=aad-pod-identity-mic",
  "--leader-election-duration=15s",
  "--http-probe-port=8080",
  "--createDeleteBatch=20",
  "--clientQps=5",
  "--immutable-user-msis=5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b,6a1d2b3c-4d5e-4f60-9a0b-1c2d3e4f5a6b",
  "--prometheus-port=8888",
  "--syncRetryDuration=3600s",
  "--update-user-msi-max-retry=2",
  "--update-user-msi-retry-interval=1s",
  "--identity-assignment-reconcile-interval=3m",
  "--custom-user-agent=contoso",
];

/** Starts MIC; it gets past its flags and stops at the first thing that needs its configuration (no azure.json). */
async function startWith(args: string[]): Promise<Record<string, unknown>[]> {
  const failure = await run(process.execPath, [MAIN, ...args], { env: { PATH: process.env["PATH"] ?? "" } }).then(
    () => ({ code: 0, stdout: "", stderr: "MIC exited 0" }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
  expect(failure.stderr, "commander refused an argument").toBe("");
  expect(failure.code).toBe(1);
  return failure.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const noticed = (lines: Record<string, unknown>[], msg: string): unknown[] => lines.filter((l) => l["msg"] === msg).map((l) => l["flag"]);

// Each test starts MIC as a process one or more times (about 1.5 s each on an idle machine, several times that while
// other suites share the cores): the bound is a hang guard, not a speed bound.
describe("podidentity-mic with aad-pod-identity v1.8's arguments", { timeout: 120_000 }, () => {
  it("chart 4.1.x's full argument list: one warning per ignored flag with its reason, then a JSON fatal line", async () => {
    const lines = await startWith(V18_CHART_MIC_ARGS);
    expect(noticed(lines, "aad-pod-identity v1.8 flag ignored")).toEqual([
      "--logtostderr",
      "--createDeleteBatch",
      "--clientQps",
      "--syncRetryDuration",
      "--update-user-msi-max-retry",
      "--update-user-msi-retry-interval",
      "--custom-user-agent",
    ]);
    expect(noticed(lines, "aad-pod-identity v1.8 flag mapped")).toEqual(["--log-format", "-v"]);
    for (const l of lines.filter((x) => x["msg"] === "aad-pod-identity v1.8 flag ignored")) expect(String(l["reason"]).length, String(l["flag"])).toBeGreaterThan(20);
    expect(lines.at(-1)).toMatchObject({ level: 60, msg: "MIC could not start", err: expect.stringContaining("/nonexistent/azure.json"), code: "mic.cloud_config_invalid" });
  });

  it("a failure before the logger is configured (pino refuses the level) is the same JSON fatal line", async () => {
    const lines = await startWith(["--log-level=loud"]);
    expect(lines).toEqual([expect.objectContaining({ level: 60, name: "podidentity-mic", msg: "MIC could not start", err: expect.stringContaining("loud") })]);
  });

  it("v1.8's deploy/infra arguments and Go's one-dash spellings (-kubeconfig, -forceNamespaced)", async () => {
    const lines = await startWith(["-cloudconfig=/nonexistent/azure.json", "-logtostderr", "-forceNamespaced", "-kubeconfig", "/nonexistent/kubeconfig"]);
    expect(noticed(lines, "aad-pod-identity v1.8 flag ignored")).toEqual(["-logtostderr"]);
    expect(lines.at(-1)).toMatchObject({ level: 60, msg: "MIC could not start" });
  });

  it("values v1.8 would also refuse are usage errors naming the flag (exit 1, no stack)", async () => {
    for (const [args, message] of [
      [["--leader-election-duration=soon"], `option '--leader-election-duration <duration>' argument 'soon' is invalid`],
      [["--http-probe-port=99999"], `option '--http-probe-port <port>' argument '99999' is invalid`],
      [["--log-format=xml"], `unknown logging format "xml"`],
      [["--bogus"], "unknown option '--bogus'"],
    ] as const) {
      const failure = await run(process.execPath, [MAIN, ...args]).catch((e: { code: number; stderr: string }) => e);
      expect((failure as { code: number }).code, args[0]).toBe(1);
      expect((failure as { stderr: string }).stderr, args[0]).toContain(message);
      expect((failure as { stderr: string }).stderr, args[0]).not.toContain("    at ");
    }
  });
});
