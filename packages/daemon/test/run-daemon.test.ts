import { execFile, spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { runDaemon, type DaemonHost, type RunDaemonOptions } from "../src/index";

/** A process stand-in: signals are emitted by the test, exits recorded. */
class FakeHost extends EventEmitter implements DaemonHost {
  readonly exits: number[] = [];
  exit(code: number): void {
    this.exits.push(code);
  }
}

interface Line {
  level: string;
  fields: object;
  msg: string;
}

function harness(overrides: Partial<RunDaemonOptions> = {}) {
  const host = new FakeHost();
  const lines: Line[] = [];
  const log = (level: string) => (fields: object, msg: string) => lines.push({ level, fields, msg });
  const stop = vi.fn<RunDaemonOptions["stop"]>(async () => undefined);
  const start = vi.fn<RunDaemonOptions["start"]>(async () => undefined);
  runDaemon({ name: "NMI", logger: { info: log("info"), error: log("error"), fatal: log("fatal") }, start, stop, stopTimeoutMs: 20_000, host, ...overrides });
  return { host, lines, stop, start };
}

const never = (): Promise<void> => new Promise(() => undefined);

afterEach(() => {
  vi.useRealTimers();
});

describe("runDaemon", () => {
  it("SIGTERM calls stop once with the signal, then exits 0", async () => {
    const { host, lines, stop } = harness();
    host.emit("SIGTERM");
    await vi.waitFor(() => expect(host.exits).toEqual([0]));
    expect(stop).toHaveBeenCalledExactlyOnceWith("SIGTERM");
    expect(lines).toEqual([{ level: "info", fields: { signal: "SIGTERM" }, msg: "shutting down" }]);
  });

  it("a start that fails before any signal: one fatal line with the error's code, exit 1, and stop is not called (a failed NMI keeps its guards)", async () => {
    const error = Object.assign(new Error("the iptables guard could not be installed"), { code: "nmi.iptables" });
    const { host, lines, stop } = harness({ start: () => Promise.reject(error) });
    await vi.waitFor(() => expect(host.exits).toEqual([1]));
    expect(stop).not.toHaveBeenCalled();
    expect(lines).toEqual([{ level: "fatal", fields: { err: error.message, code: "nmi.iptables" }, msg: "NMI could not start" }]);
  });

  it("a start that throws synchronously is the same fatal line", async () => {
    const { host, lines } = harness({
      start: () => {
        throw new Error("sync");
      },
    });
    await vi.waitFor(() => expect(host.exits).toEqual([1]));
    expect(lines.map((l) => l.msg)).toEqual(["NMI could not start"]);
  });

  it("a signal while start is still waiting (e.g. for a port) stops the daemon; start's later failure is not a second exit", async () => {
    let failStart!: (error: Error) => void;
    const { host, lines, stop } = harness({ start: () => new Promise((_, reject) => (failStart = reject)) });
    host.emit("SIGTERM");
    await vi.waitFor(() => expect(host.exits).toEqual([0]));
    failStart(new Error("informers stopped before they synced"));
    await new Promise((r) => setImmediate(r));
    expect(stop).toHaveBeenCalledOnce();
    expect(host.exits).toEqual([0]);
    expect(lines.filter((l) => l.level === "fatal")).toEqual([]);
  });

  it("a second signal while stopping is logged and does not stop twice or exit early", async () => {
    let finish!: () => void;
    const stop = vi.fn(() => new Promise<void>((r) => (finish = r)));
    const { host, lines } = harness({ stop });
    host.emit("SIGTERM");
    host.emit("SIGINT");
    host.emit("SIGTERM");
    expect(stop).toHaveBeenCalledOnce();
    expect(host.exits).toEqual([]);
    expect(lines.slice(1).map((l) => [l.fields, l.msg])).toEqual([
      [{ signal: "SIGINT" }, "NMI is already shutting down: waiting for it (at most 20000 ms from the first signal)"],
      [{ signal: "SIGTERM" }, "NMI is already shutting down: waiting for it (at most 20000 ms from the first signal)"],
    ]);
    finish();
    await vi.waitFor(() => expect(host.exits).toEqual([0]));
  });

  it("a stop that fails: its message and code logged (never its cause), exit 1", async () => {
    const error = new Error("removing the iptables rules failed", { cause: new Error("Bearer secret-token") });
    const { host, lines } = harness({ stop: () => Promise.reject(error) });
    host.emit("SIGTERM");
    await vi.waitFor(() => expect(host.exits).toEqual([1]));
    expect(lines.at(-1)).toEqual({ level: "error", fields: { err: "removing the iptables rules failed" }, msg: "NMI's shutdown failed" });
    expect(JSON.stringify(lines)).not.toContain("secret-token");
  });

  it("a stop that outlasts stopTimeoutMs: exit 1 at the deadline, not before, and its late end changes nothing", async () => {
    vi.useFakeTimers();
    let finish!: () => void;
    const { host, lines } = harness({ stopTimeoutMs: 10_000, stop: () => new Promise<void>((r) => (finish = r)) });
    host.emit("SIGTERM");
    await vi.advanceTimersByTimeAsync(9_999);
    expect(host.exits).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(host.exits).toEqual([1]);
    expect(lines.at(-1)).toEqual({ level: "error", fields: { signal: "SIGTERM", stopTimeoutMs: 10_000 }, msg: "NMI's shutdown did not finish within 10000 ms: exiting" });
    finish();
    await vi.advanceTimersByTimeAsync(0);
    expect(host.exits).toEqual([1]);
  });

  it("a stop that finishes in time clears its deadline (no timer left behind)", async () => {
    vi.useFakeTimers();
    const { host } = harness();
    host.emit("SIGTERM");
    await vi.advanceTimersByTimeAsync(0);
    expect(host.exits).toEqual([0]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it.each([
    ["uncaughtException", "NMI crashed: uncaught exception"],
    ["unhandledRejection", "NMI crashed: unhandled promise rejection"],
  ])("%s: a fatal line and exit 1, without stop (a crashed NMI keeps its rules)", async (event, msg) => {
    const { host, lines, stop } = harness({ start: never });
    host.emit(event, new Error("boom"));
    expect(host.exits).toEqual([1]);
    expect(stop).not.toHaveBeenCalled();
    expect(lines).toEqual([{ level: "fatal", fields: { err: "boom" }, msg }]);
  });
});

// The same with real signals, a real exit code and real JSON lines: a process built from fixtures/daemon-child.ts.
const run = promisify(execFile);
const CHILD = resolve(import.meta.dirname, "../node_modules/.test-child/daemon-child.js");

beforeAll(async () => {
  await run("pnpm", ["exec", "tsup", "test/fixtures/daemon-child.ts", "--no-config", "--format", "esm", "--target", "node22", "--out-dir", "node_modules/.test-child", "--silent"], { cwd: resolve(import.meta.dirname, "..") });
}, 120_000);

/** Starts the child in `mode`; `lines` fills as it writes, `exited` resolves with its exit code and signal. */
function child(mode: string) {
  const proc = spawn(process.execPath, [CHILD, mode], { stdio: ["ignore", "pipe", "pipe"] });
  const lines: Array<Record<string, unknown>> = [];
  let buffer = "";
  proc.stdout.on("data", (chunk: Buffer) => {
    buffer += chunk.toString();
    const parts = buffer.split("\n");
    buffer = parts.pop()!;
    for (const part of parts) lines.push(JSON.parse(part) as Record<string, unknown>);
  });
  let stderr = "";
  proc.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; stderr: string }>((r) => proc.once("close", (code) => r({ code, stderr })));
  const logged = (msg: string) => vi.waitFor(() => expect(lines.map((l) => l["msg"])).toContain(msg), { timeout: 20_000, interval: 20 });
  return { proc, lines, exited, logged };
}

describe("runDaemon in a process", { timeout: 30_000 }, () => {
  it("SIGTERM while start is still waiting: stop runs, exit 0", async () => {
    const c = child("start-hangs");
    await c.logged("started");
    c.proc.kill("SIGTERM");
    expect((await c.exited).code).toBe(0);
    expect(c.lines.map((l) => l["msg"])).toEqual(["started", "shutting down", "stop called"]);
  });

  it("a second signal (Ctrl-C twice) waits for the stop in progress", async () => {
    const c = child("stop-waits");
    await c.logged("started");
    c.proc.kill("SIGINT");
    await c.logged("stop called");
    c.proc.kill("SIGINT");
    await c.logged("TEST is already shutting down: waiting for it (at most 30000 ms from the first signal)");
    c.proc.kill("SIGUSR2");
    expect((await c.exited).code).toBe(0);
  });

  it.each([
    ["start-fails", { level: 60, err: "port 2579 in use", code: "test.port_in_use", msg: "TEST could not start" }],
    ["crash", { level: 60, err: "boom", msg: "TEST crashed: uncaught exception" }],
    ["rejection", { level: 60, err: "nobody awaited this", msg: "TEST crashed: unhandled promise rejection" }],
  ])("%s: exit 1, the last line is JSON, nothing on stderr (no stack trace)", async (mode, last) => {
    const c = child(mode);
    const { code, stderr } = await c.exited;
    expect(code).toBe(1);
    expect(c.lines.at(-1)).toEqual(last);
    expect(stderr).toBe("");
  });

  it("a stop that fails exits 1; one that hangs exits 1 at stopTimeoutMs", async () => {
    for (const [mode, msg] of [
      ["stop-fails", "TEST's shutdown failed"],
      ["stop-hangs", "TEST's shutdown did not finish within 500 ms: exiting"],
    ] as const) {
      const c = child(mode);
      await c.logged("started");
      c.proc.kill("SIGTERM");
      expect((await c.exited).code).toBe(1);
      expect(c.lines.at(-1)).toMatchObject({ level: 50, msg });
    }
  });
});
