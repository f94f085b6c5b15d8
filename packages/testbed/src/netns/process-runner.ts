/**
 * Running a process inside a node or pod network namespace, as a container runtime would: `ip netns exec` (which
 * also gives the process its own mount namespace, a slave of ours), then bind mounts of the harness's hosts and
 * resolv.conf files over /etc, so the process resolves the real Azure host names to the emulators without the
 * machine's /etc ever changing. The process keeps the PID `spawn` returns (`ip netns exec` and the shell both exec).
 */
import type { ChildProcess, StdioOptions } from "node:child_process";
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { collectOutput, stopProcess, toolPath, type ProcessResult } from "./exec";

export interface SpawnInNetnsOptions {
  /** Added to the environment (which is this process's, minus proxy settings, plus the CA variables). */
  env?: NodeJS.ProcessEnv;
  /** Start from an empty environment instead of this process's (PATH and the CA variables are still set). */
  cleanEnv?: boolean;
  cwd?: string;
  /** Default `pipe` for all three. */
  stdio?: StdioOptions;
  /**
   * Mount /proc/sys read-only for this process (in its own mount namespace), as a container that is not
   * privileged sees it: writing a sysctl fails with EROFS, even as root.
   */
  readOnlyProcSys?: boolean;
}

export interface RunInNetnsOptions extends Omit<SpawnInNetnsOptions, "stdio"> {
  /** Kill the process and reject with `TIMEOUT` after this long; default `DEFAULT_TOPOLOGY_OPTIONS.runTimeoutMs`. */
  timeoutMs?: number;
  /** Written to the process's stdin, which is then closed. */
  input?: string;
}

export type { ProcessResult };

const BIND_SCRIPT = 'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@"';
// `ip netns exec` gives the process a mount namespace that is a slave of ours: these mounts never reach the machine.
const READ_ONLY_PROC_SYS = "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && ";

// Proxies would send pod traffic to an address outside our namespaces (or fail); pods here talk directly.
const DROPPED_ENV = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "NO_PROXY", "no_proxy"];

/** What each process in a namespace sees: its hosts and resolv.conf files, and the CA variables. */
export interface NetnsFiles {
  hostsFile: string;
  resolvFile: string;
  caEnv: Record<string, string>;
}

/** Environment variables that make Node, Python (az) and curl/OpenSSL trust the CA at `caFile`. */
export function caEnvironment(caFile: string | undefined): Record<string, string> {
  if (!caFile) return {};
  return { NODE_EXTRA_CA_CERTS: caFile, REQUESTS_CA_BUNDLE: caFile, SSL_CERT_FILE: caFile, CURL_CA_BUNDLE: caFile, AZURE_CORE_COLLECT_TELEMETRY: "false" };
}

export function hostsFileText(self: { address: string; names: string[] } | undefined, entries: ReadonlyMap<string, string[]>): string {
  const lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"];
  if (self) lines.push(`${self.address}\t${self.names.join(" ")}`);
  for (const [address, names] of entries) if (names.length) lines.push(`${address}\t${names.join(" ")}`);
  return lines.join("\n") + "\n";
}

/** A resolver that fails at once (nothing answers DNS on the namespace's loopback): only the hosts file resolves. */
export const RESOLV_CONF_TEXT = "# podidentity testbed: names resolve through /etc/hosts only\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n";

export async function writeNetnsFile(path: string, text: string): Promise<void> {
  // writeFile truncates in place (same inode), so processes that already bind-mounted the file see the new text
  await writeFile(path, text, { mode: 0o644 });
}

export function spawnInNetns(netns: string, files: NetnsFiles, command: string, args: readonly string[], options: SpawnInNetnsOptions = {}): ChildProcess {
  const base: NodeJS.ProcessEnv = options.cleanEnv ? {} : { ...process.env };
  for (const k of DROPPED_ENV) delete base[k];
  const env = { ...base, PATH: toolPath(base["PATH"]), ...files.caEnv, ...options.env };
  const script = (options.readOnlyProcSys ? READ_ONLY_PROC_SYS : "") + BIND_SCRIPT;
  return spawn("ip", ["netns", "exec", netns, "/bin/sh", "-c", script, "podid-exec", files.hostsFile, files.resolvFile, command, ...args], {
    env,
    stdio: options.stdio ?? "pipe",
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
}

/** How a stopped process ended: its exit code, or the signal that ended it. */
export interface ProcessExit {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
}

/** Keeps every process the topology started, so `close()` can end them all. */
export class ProcessTracker {
  readonly #procs = new Map<ChildProcess, string>();

  /** `owner` names what the process belongs to (a node's namespace, a pod), for `stop(owner)`. */
  track(child: ChildProcess, owner: string): ChildProcess {
    this.#procs.set(child, owner);
    child.once("exit", () => this.#procs.delete(child));
    child.once("error", () => this.#procs.delete(child));
    return child;
  }

  /** Stops the processes of `owner` (all of them when undefined): SIGTERM, SIGKILL after `graceMs`. Returns how each ended. */
  async stop(owner: string | undefined, graceMs: number): Promise<ProcessExit[]> {
    const targets = [...this.#procs].filter(([, o]) => owner === undefined || o === owner).map(([c]) => c);
    await Promise.all(targets.map((c) => stopProcess(c, graceMs)));
    return targets.map((c) => ({ exitCode: c.exitCode, signal: c.signalCode }));
  }

  get size(): number {
    return this.#procs.size;
  }
}

export async function runToCompletion(child: ChildProcess, input: string | undefined, timeoutMs: number, what: string): Promise<ProcessResult> {
  const done = collectOutput(child, timeoutMs, what);
  child.stdin?.end(input);
  return done;
}
