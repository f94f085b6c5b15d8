/**
 * Re-runs this program inside the testbed's private network namespace (root: net + mount + PID namespaces;
 * otherwise an unprivileged user namespace around them, as rootless containers do), or explains why the system
 * forbids it. The outer process waits, passes SIGTERM/SIGHUP on, and tells the inner one (first line on its stdin)
 * the machine-wide PID of the namespaces' init, which `nsenter --target` needs to join them from outside — the
 * inner process only sees PIDs of its own PID namespace.
 */
import { readdirSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { privateNetnsInfo, privateNetnsUnavailableReason, spawnInPrivateNetns, type PrivateNetnsMode } from "@podidentity/testbed";

function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) out.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

export type EnterResult = { inside: true; mode: PrivateNetnsMode } | { inside: false; exitCode: number };

/**
 * Inside the private namespace: returns `{ inside: true }` and the caller goes on. Outside: runs `argv` (this
 * script and its arguments) inside one, and returns its exit status when it is done.
 */
export async function enterPrivateNetns(argv: readonly string[], out: (line: string) => void): Promise<EnterResult> {
  const info = privateNetnsInfo();
  if (info) return { inside: true, mode: info.mode };
  const mode: PrivateNetnsMode = process.geteuid?.() === 0 ? "root" : "rootless";
  const reason = privateNetnsUnavailableReason(mode);
  if (reason) {
    out(`✘ Cannot build the cluster's network namespaces here: ${reason}`);
    if (mode === "rootless") out("  Or run the demo as root: sudo env PATH=\"$PATH\" pnpm demo");
    return { inside: false, exitCode: 1 };
  }
  const { child, stop } = spawnInPrivateNetns(process.execPath, argv, { stdio: ["pipe", "inherit", "inherit"], env: { ...process.env, PODIDENTITY_DEMO_OUTER_PID: String(process.pid) } });
  const forward = (signal: NodeJS.Signals): void => void stop(signal, 15_000);
  // Ctrl-C reaches the inner program directly (same process group); this process waits for it to finish.
  const ignore = (): void => undefined;
  process.on("SIGTERM", forward).on("SIGHUP", forward).on("SIGINT", ignore);
  // A wrapper killed without passing a signal on (SIGKILL to make or pnpm) leaves this process orphaned: a new parent
  // is the sign to stop as for SIGTERM, so the cluster never keeps running unattended.
  const parent = process.ppid;
  const orphanWatch = setInterval(() => {
    if (process.ppid !== parent) {
      clearInterval(orphanWatch);
      forward("SIGTERM");
    }
  }, 250);
  const tellInitPid = (): void => {
    if (child.pid === undefined || !child.stdin) return;
    const init = childPids(child.pid)[0];
    if (init === undefined) {
      setTimeout(tellInitPid, 20).unref();
      return;
    }
    child.stdin.on("error", () => undefined);
    child.stdin.write(`${init}\n`);
  };
  tellInitPid();
  const exitCode = await new Promise<number>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => resolve(code ?? (signal === "SIGKILL" ? 137 : 143)));
  });
  clearInterval(orphanWatch);
  process.off("SIGTERM", forward).off("SIGHUP", forward).off("SIGINT", ignore);
  return { inside: false, exitCode };
}

/** Inside: the machine-wide PID of the namespaces' init, as the outer process wrote it on stdin. */
export async function outerInitPid(timeoutMs = 2_000): Promise<number | undefined> {
  if (process.stdin.isTTY) return undefined;
  const lines = createInterface({ input: process.stdin });
  try {
    return await Promise.race([
      new Promise<number | undefined>((resolve) => lines.once("line", (l) => resolve(Number(l) || undefined))),
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), timeoutMs).unref()),
    ]);
  } finally {
    lines.close();
  }
}
