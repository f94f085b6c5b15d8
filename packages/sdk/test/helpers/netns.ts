import { spawn } from "node:child_process";

export interface NetnsRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node script` inside a fresh, empty network namespace (`unshare --net`: only a loopback, no routes, its
 * own iptables), after `setup` shell commands inside it. The machine's network is never touched; the namespace
 * ends with the process. Needs root (CI and the netns tests run as root).
 */
export function runNodeInFreshNetns(setup: readonly string[], script: string, env: NodeJS.ProcessEnv, timeoutMs = 30_000): Promise<NetnsRun> {
  const shell = ["set -e", "ip link set lo up", ...setup, 'exec "$0" "$@"'].join("\n");
  return new Promise((resolve, reject) => {
    const child = spawn("unshare", ["--net", "--", "/bin/sh", "-c", shell, process.execPath, script], {
      env: { PATH: process.env.PATH, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    // A hang guard, not a measurement: the SDK's own bounds end the child long before.
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}
