import type { CommandRunner } from "./command-runner";
import { InterceptionError, NMI_CHAIN, splitRule } from "./iptables-manager";

/** The tables NMI's chains live in (nat: the DNAT; filter: the guard of NMI's port). */
const TABLES = ["nat", "filter"] as const;

export interface CleanupReport {
  /** Backends (iptables-nft, iptables-legacy, or plain iptables when neither exists) that were looked at. */
  backends: string[];
  /** Rules deleted, as `<backend> -t <table> <rule>` (jumps) and `<backend> -t <table> -X <chain>` (chains). */
  removed: string[];
}

async function available(run: CommandRunner, program: string): Promise<boolean> {
  try {
    return (await run(program, ["--version"])).code === 0;
  } catch {
    return false; // not installed
  }
}

/**
 * Removes every trace of NMI's interception, whatever rule set put it there (any NMI version, either backend):
 * in the nat and filter tables, every rule that jumps to the `aad-metadata` chain (PREROUTING, INPUT, FORWARD, or
 * wherever else one was added), then the chain itself. Rules
 * written with iptables-legacy are invisible to iptables-nft and the other way round, so both are cleaned when
 * installed. Idempotent: nothing to remove is success. Throws InterceptionError when iptables refuses (not root,
 * no NET_ADMIN) or is missing.
 */
export async function removeInterceptionRules(run: CommandRunner): Promise<CleanupReport> {
  const candidates = ["iptables-nft", "iptables-legacy"];
  const backends: string[] = [];
  for (const program of candidates) if (await available(run, program)) backends.push(program);
  if (backends.length === 0) {
    if (!(await available(run, "iptables"))) throw new InterceptionError("iptables is not installed (or not on PATH): nothing can be cleaned up");
    backends.push("iptables");
  }
  const removed: string[] = [];
  for (const backend of backends) {
    const ipt = (args: string[]) => run(backend, ["-w", "5", ...args]);
    for (const table of TABLES) {
      const listed = await ipt(["-t", table, "-S"]);
      // A backend whose kernel table was never loaded holds no rules (iptables-legacy on an nft-only node).
      if (listed.code !== 0 && /table does not exist/i.test(listed.stderr)) continue;
      if (listed.code !== 0) throw new InterceptionError(`${backend} -t ${table} -S failed (${listed.code}): ${listed.stderr.trim()} (cleanup needs root with NET_ADMIN in the node's network namespace)`);
      const lines = listed.stdout.split("\n").map((l) => l.trim());
      const jumps = lines.filter((l) => l.startsWith("-A ") && / -j aad-metadata(\s|$)/.test(l) && !l.startsWith(`-A ${NMI_CHAIN} `));
      for (const rule of jumps) {
        const args = splitRule(rule);
        args[0] = "-D";
        const r = await ipt(["-t", table, ...args]);
        if (r.code !== 0) throw new InterceptionError(`${backend} -t ${table} ${args.join(" ")} failed (${r.code}): ${r.stderr.trim()}`);
        removed.push(`${backend} -t ${table} ${rule}`);
      }
      if (lines.includes(`-N ${NMI_CHAIN}`)) {
        for (const args of [["-F", NMI_CHAIN], ["-X", NMI_CHAIN]]) {
          const r = await ipt(["-t", table, ...args]);
          if (r.code !== 0) throw new InterceptionError(`${backend} -t ${table} ${args.join(" ")} failed (${r.code}): ${r.stderr.trim()}`);
        }
        removed.push(`${backend} -t ${table} -X ${NMI_CHAIN}`);
      }
    }
  }
  return { backends, removed };
}
