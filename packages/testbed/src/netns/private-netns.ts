/**
 * Entering the one private network namespace the whole topology lives in.
 *
 * A Node process cannot move itself into another network namespace, so the harness re-runs a command (the e2e
 * test runner, the demo) inside fresh namespaces made by `unshare`: a network namespace (only loopback to start
 * with — the machine's interfaces, routes and iptables are out of reach), a mount namespace with a tmpfs on
 * /run/netns (so `ip netns add` names never appear on the machine, and `/etc` bind mounts stay private), and a PID
 * namespace whose init is killed with `unshare`, so after a crash the kernel removes every process, and with them
 * every namespace and veth. Nothing can be left behind on the machine, by construction.
 *
 * As root the namespaces are made directly; otherwise inside an unprivileged user namespace with the user mapped
 * to root (as rootless containers do), where the system allows it.
 */
import type { ChildProcess, SpawnOptions } from "node:child_process";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { NetnsError } from "./errors";
import { toolPath, waitForExit } from "./exec";

/** Set inside the private namespaces: the run ID, and how they were made. */
export const PRIVATE_NETNS_ENV = { runId: "PODIDENTITY_NETNS_RUN_ID", mode: "PODIDENTITY_NETNS_MODE", filesDir: "PODIDENTITY_NETNS_FILES" } as const;

/** A tmpfs private to the namespaces, for the run's hosts files and CA: gone with them, even after a crash. */
export const PRIVATE_FILES_DIR = "/run/podidentity-netns";

export type PrivateNetnsMode = "root" | "rootless";

export interface PrivateNetnsOptions {
  /** `auto` (default): root when the effective user is root, else rootless. */
  mode?: PrivateNetnsMode | "auto";
  /** Short ID naming this run's namespaces (`podid-<runId>-…`); default 6 random hex digits. */
  runId?: string;
  /** Environment for the command (default `process.env`); the run ID and mode are added. */
  env?: NodeJS.ProcessEnv;
  stdio?: SpawnOptions["stdio"];
  cwd?: string;
}

export interface PrivateNetnsInfo {
  runId: string;
  mode: PrivateNetnsMode;
  /** A private tmpfs for the run's files. */
  filesDir: string;
}

// Runs as the PID namespace's init: it prepares the mounts, then runs the command as its child (not exec), so the
// command gets ordinary signal semantics (an init ignores signals it has no handler for) and its exit status is
// passed on. /run/netns may be missing and uncreatable without root: then a tmpfs over /run itself.
const ENTER_SCRIPT = [
  "set -e",
  "if [ -d /run/netns ] || mkdir -p /run/netns 2>/dev/null; then mount -t tmpfs -o mode=0755,size=1m podid-netns /run/netns;",
  "else mount -t tmpfs -o mode=0755 podid-run /run; mkdir /run/netns; fi",
  `mkdir -p ${PRIVATE_FILES_DIR}`,
  `mount -t tmpfs -o mode=0755,size=64m podid-files ${PRIVATE_FILES_DIR}`,
  // The infra namespace's own /sys (as `ip netns exec` does for the others); cosmetic, so failures are ignored.
  "mount -t sysfs podid-sysfs /sys 2>/dev/null || true",
  "ip link set lo up",
  "set +e",
  // Ctrl-C reaches this shell too (same process group): without a trap, sh would exit 130 after the command, even
  // when the command handled the SIGINT and exited 0. A trap (unlike ignoring) leaves the command's SIGINT default.
  "trap : INT",
  '"$@"',
  "exit $?",
].join("\n");

/** Where this process is: inside a private network namespace made by this module, or not (undefined). */
export function privateNetnsInfo(env: NodeJS.ProcessEnv = process.env): PrivateNetnsInfo | undefined {
  const runId = env[PRIVATE_NETNS_ENV.runId];
  const mode = env[PRIVATE_NETNS_ENV.mode];
  if (!runId || (mode !== "root" && mode !== "rootless")) return undefined;
  return { runId, mode, filesDir: env[PRIVATE_NETNS_ENV.filesDir] || PRIVATE_FILES_DIR };
}

export function newRunId(): string {
  return randomBytes(3).toString("hex");
}

function resolveMode(mode: PrivateNetnsOptions["mode"]): PrivateNetnsMode {
  if (mode === "root" || mode === "rootless") return mode;
  return process.geteuid?.() === 0 ? "root" : "rootless";
}

/** The `unshare` argv that runs `command args` inside fresh private namespaces. */
export function privateNetnsArgv(mode: PrivateNetnsMode, command: string, args: readonly string[]): string[] {
  const ns = mode === "rootless" ? ["--user", "--map-root-user"] : [];
  return [...ns, "--net", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--mount-proc", "--", "/bin/sh", "-c", ENTER_SCRIPT, "podid-enter", command, ...args];
}

/**
 * Why this system cannot make a private network namespace for `mode`, with what to do instead; undefined when it
 * can. Probes by making one (and nothing else) and, on failure, reads the kernel knobs that forbid it.
 */
export function privateNetnsUnavailableReason(mode: PrivateNetnsMode): string | undefined {
  if (mode === "root" && process.geteuid?.() !== 0) return "mode \"root\" needs the effective user to be root (run with sudo, or use mode \"rootless\")";
  const tools = spawnSync("/bin/sh", ["-c", "command -v ip && command -v iptables && command -v unshare"], { encoding: "utf8", env: { ...process.env, PATH: toolPath() } });
  if (tools.status !== 0) return "`ip` (iproute2), `iptables` and `unshare` (util-linux) must be installed (apt-get install iproute2 iptables util-linux)";
  const probe = spawnSync("unshare", privateNetnsArgv(mode, "true", []), { encoding: "utf8", env: { ...process.env, PATH: toolPath() }, timeout: 10_000 });
  if (probe.error) return `\`unshare\` could not be run: ${probe.error.message}`;
  if (probe.status === 0) return undefined;
  const stderr = (probe.stderr ?? "").trim();
  if (mode === "root") return `\`unshare --net --mount --pid\` failed as root: ${stderr} (a container without CAP_SYS_ADMIN cannot make namespaces; run on the host or in a privileged container)`;
  const knobs: string[] = [];
  const read = (path: string): string | undefined => (existsSync(path) ? readFileSync(path, "utf8").trim() : undefined);
  if (read("/proc/sys/kernel/unprivileged_userns_clone") === "0") knobs.push("kernel.unprivileged_userns_clone=0 (enable: sudo sysctl -w kernel.unprivileged_userns_clone=1)");
  if (read("/proc/sys/user/max_user_namespaces") === "0") knobs.push("user.max_user_namespaces=0 (enable: sudo sysctl -w user.max_user_namespaces=15000)");
  if (read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") === "1") {
    knobs.push("AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1; allow: sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0)");
  }
  const why = knobs.length ? knobs.join("; ") : `unshare said: ${stderr || `exit status ${probe.status}`}`;
  return `this system does not allow unprivileged user namespaces: ${why}. Run as root instead (sudo), where the topology is built without a user namespace.`;
}

export interface PrivateNetnsProcess {
  /** The `unshare` process. It ignores SIGINT and SIGTERM while the command runs (use `stop`); SIGKILL ends everything inside. */
  child: ChildProcess;
  info: PrivateNetnsInfo;
  /**
   * Sends `signal` (default SIGTERM) to the command inside, so it can shut down cleanly; after `graceMs` (default
   * 5 s) SIGKILLs `unshare`, and the kernel ends everything inside. Resolves once `unshare` has exited.
   */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

/** The children of `pid`, from /proc/<pid>/stat (field 4 is the parent PID). */
function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // exited meanwhile
    }
    // the command name (field 2) is in parentheses and may contain spaces: parse after the last ")"
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (ppid === pid) out.push(Number(entry));
  }
  return out;
}

/**
 * Runs `command args` inside fresh private network + mount + PID namespaces (user namespace too when rootless).
 * Throws `PRIVATE_NETNS_UNAVAILABLE` with the reason when the system forbids it. In a terminal, Ctrl-C reaches the
 * command directly (same process group); from code, use `stop()`.
 */
export function spawnInPrivateNetns(command: string, args: readonly string[], options: PrivateNetnsOptions = {}): PrivateNetnsProcess {
  const mode = resolveMode(options.mode);
  const reason = privateNetnsUnavailableReason(mode);
  if (reason) throw new NetnsError("PRIVATE_NETNS_UNAVAILABLE", `Cannot make a private network namespace: ${reason}`, { details: { mode } });
  const info: PrivateNetnsInfo = { runId: options.runId ?? newRunId(), mode, filesDir: PRIVATE_FILES_DIR };
  if (!/^[a-z0-9]{1,8}$/.test(info.runId)) throw new NetnsError("INVALID_ARGUMENT", `spawnInPrivateNetns: runId must be 1-8 lowercase letters or digits, got "${info.runId}"`);
  const env = { ...(options.env ?? process.env), PATH: toolPath((options.env ?? process.env)["PATH"]), [PRIVATE_NETNS_ENV.runId]: info.runId, [PRIVATE_NETNS_ENV.mode]: mode, [PRIVATE_NETNS_ENV.filesDir]: info.filesDir };
  const child = spawn("unshare", privateNetnsArgv(mode, command, args), { env, stdio: options.stdio ?? "inherit", ...(options.cwd ? { cwd: options.cwd } : {}) });
  const stop = async (signal: NodeJS.Signals = "SIGTERM", graceMs = 5_000): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    // unshare → the namespace's init (our shell) → the command
    for (const init of childPids(child.pid)) {
      for (const cmd of childPids(init)) {
        try {
          process.kill(cmd, signal);
        } catch {
          // exited meanwhile
        }
      }
    }
    if (await waitForExit(child, graceMs)) return;
    child.kill("SIGKILL");
    await waitForExit(child, 5_000);
  };
  return { child, info, stop };
}

/**
 * `spawnInPrivateNetns` and wait: resolves with the exit status (a signal counts as 128 + its number, as a shell
 * does). While it runs, SIGTERM and SIGHUP to this process are passed to the command inside; SIGINT is not
 * (Ctrl-C already reaches the whole process group) but no longer ends this process before the command has exited.
 */
export function runInPrivateNetns(command: string, args: readonly string[], options: PrivateNetnsOptions = {}): Promise<number> {
  const { child, stop } = spawnInPrivateNetns(command, args, options);
  const forward = (signal: NodeJS.Signals): void => void stop(signal);
  const keepAlive = (): void => undefined;
  process.on("SIGTERM", forward).on("SIGHUP", forward).on("SIGINT", keepAlive);
  const detach = (): void => {
    process.off("SIGTERM", forward).off("SIGHUP", forward).off("SIGINT", keepAlive);
  };
  return new Promise((resolve, reject) => {
    child.once("error", (err) => {
      detach();
      reject(new NetnsError("PRIVATE_NETNS_UNAVAILABLE", `unshare could not be started: ${err.message}`, { cause: err }));
    });
    child.once("close", (code, signal) => {
      detach();
      resolve(code ?? 128 + (signal === "SIGKILL" ? 9 : 15));
    });
  });
}
