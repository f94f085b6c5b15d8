/**
 * Running the system tools the topology is built with (`ip`, `iptables`, `mount`) and collecting a child's
 * output with a deadline. Every failure becomes a `NetnsError` here, with the command and its stderr.
 */
import type { ChildProcess } from "node:child_process";
import { execFile } from "node:child_process";
import { NetnsError } from "./errors";

/** `ip` and `iptables` live in /usr/sbin, which a non-root user's PATH often lacks. */
export function toolPath(path = process.env["PATH"] ?? ""): string {
  const parts = path.split(":").filter(Boolean);
  for (const dir of ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]) if (!parts.includes(dir)) parts.push(dir);
  return parts.join(":");
}

export interface CommandResult {
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; rejects with `COMMAND_FAILED` (exit status, stderr) or on timeout. */
export function runCommand(file: string, args: readonly string[], options: { timeoutMs?: number; input?: string } = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { timeout: options.timeoutMs ?? 10_000, killSignal: "SIGKILL", env: { ...process.env, PATH: toolPath() }, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (!error) return resolve({ stdout, stderr });
        const command = [file, ...args].join(" ");
        reject(
          new NetnsError("COMMAND_FAILED", `\`${command}\` failed: ${stderr.trim() || error.message}`, {
            cause: error,
            details: { command, stderr, stdout, exitCode: typeof error.code === "number" ? error.code : undefined },
          }),
        );
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

export interface ProcessResult {
  /** Exit status, or null when a signal ended the process. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Collects a child's stdout/stderr until it exits. Past `timeoutMs` the child is killed (SIGKILL) and the promise
 * rejects with `TIMEOUT`, carrying the output so far.
 */
export function collectOutput(child: ChildProcess, timeoutMs: number, what: string): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    let stdout = "";
    let stderr = "";
    child.stdout?.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr?.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new NetnsError("TIMEOUT", `${what} did not exit within ${timeoutMs} ms (pass a larger timeoutMs if it is expected to run longer)`, { details: { stdout, stderr } }));
    }, timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(new NetnsError("COMMAND_FAILED", `${what} could not be started: ${err.message}`, { cause: err }));
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Waits until `child` has exited, at most `ms`; true when it did. */
export function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off("exit", onExit);
      resolve(false);
    }, ms);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once("exit", onExit);
  });
}

/** SIGTERM, then SIGKILL after `graceMs` if it is still alive. */
export async function stopProcess(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  if (await waitForExit(child, graceMs)) return;
  child.kill("SIGKILL");
  await waitForExit(child, 5_000);
}
