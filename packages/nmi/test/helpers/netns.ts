import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";

const run = promisify(execFile);
export const NETNS_PREFIX = "podid-nmi-";

/** Why network-namespace tests cannot run here, or undefined when they can (root, `ip` and `iptables`). */
export async function netnsUnavailableReason(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return "not root: network namespaces and iptables need root";
  try {
    await run("ip", ["-V"]);
    await run("iptables", ["--version"]);
  } catch {
    return "ip or iptables is not installed (scripts/install-system-deps.sh installs them)";
  }
  return undefined;
}

export async function sh(args: string[]): Promise<string> {
  const { stdout } = await run(args[0]!, args.slice(1), { encoding: "utf8" });
  return stdout;
}

/** The process that created a namespace named `podid-nmi-<pid>-…`, or undefined for other names. */
function creatorPid(name: string): number | undefined {
  const m = /^podid-nmi-(\d+)-/.exec(name);
  return m ? Number(m[1]) : undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Deletes namespaces left behind by an earlier, interrupted run: those whose creating process is gone (and names
 * from before the pid was part of them). Never another live test file's: vitest runs files in parallel processes,
 * and deleting every `podid-nmi-*` namespace pulled them from under each other's running tests.
 */
export async function deleteStaleNamespaces(): Promise<void> {
  const list = await sh(["ip", "netns", "list"]);
  for (const line of list.split("\n")) {
    const name = line.split(" ")[0];
    if (!name?.startsWith(NETNS_PREFIX)) continue;
    const pid = creatorPid(name);
    if (pid !== undefined && isAlive(pid)) continue;
    await run("ip", ["netns", "del", name]).catch(() => undefined);
  }
}

/** Namespaces created by one test; `cleanup()` deletes them and kills processes started in them. */
export class NetnsSet {
  readonly names: string[] = [];
  readonly #children: ChildProcess[] = [];
  readonly id = randomBytes(3).toString("hex");

  async add(role: string): Promise<string> {
    const name = `${NETNS_PREFIX}${process.pid}-${role}-${this.id}`;
    await sh(["ip", "netns", "add", name]);
    this.names.push(name);
    await sh(["ip", "-n", name, "link", "set", "lo", "up"]);
    return name;
  }

  /** A node namespace and a pod namespace joined by a veth: node 10.77.0.1/24, pod 10.77.0.2 with default route via the node. */
  async nodeAndPod(): Promise<{ node: string; pod: string; nodeIp: string; podIp: string }> {
    const node = await this.add("node");
    const pod = await this.add("pod");
    const a = `vn${this.id}`;
    const b = `vp${this.id}`;
    await sh(["ip", "link", "add", a, "type", "veth", "peer", "name", b]);
    await sh(["ip", "link", "set", a, "netns", node]);
    await sh(["ip", "link", "set", b, "netns", pod]);
    await sh(["ip", "-n", node, "addr", "add", "10.77.0.1/24", "dev", a]);
    await sh(["ip", "-n", pod, "addr", "add", "10.77.0.2/24", "dev", b]);
    await sh(["ip", "-n", node, "link", "set", a, "up"]);
    await sh(["ip", "-n", pod, "link", "set", b, "up"]);
    await sh(["ip", "-n", pod, "route", "add", "default", "via", "10.77.0.1"]);
    return { node, pod, nodeIp: "10.77.0.1", podIp: "10.77.0.2" };
  }

  /** Starts `node -e script` inside `ns` and resolves once it prints `ready`. */
  async spawnNode(ns: string, script: string): Promise<ChildProcess> {
    const child = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
    this.#children.push(child);
    await new Promise<void>((resolve, reject) => {
      let out = "";
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes("ready")) resolve();
      });
      child.once("exit", (code) => reject(new Error(`process in ${ns} exited with ${code} before it was ready`)));
    });
    return child;
  }

  async cleanup(): Promise<void> {
    for (const child of this.#children.splice(0)) {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
    }
    for (const name of this.names.splice(0)) await run("ip", ["netns", "del", name]).catch(() => undefined);
  }
}
