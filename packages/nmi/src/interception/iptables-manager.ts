import type { Logger } from "pino";
import type { CommandRunner } from "./command-runner";

export const NMI_CHAIN = "aad-metadata";

export type IptablesBackend = "iptables" | "iptables-nft" | "iptables-legacy";

export interface IptablesManagerOptions {
  metadataIp: string;
  metadataPort: number;
  /** Where intercepted traffic goes: NMI's address and port. */
  targetIp: string;
  targetPort: number;
  run: CommandRunner;
  logger: Logger;
  /** `auto` picks the backend the node's rules live in (as kube-proxy does); default auto. */
  backend?: IptablesBackend | "auto";
  /** Called whenever rules were found missing or changed and re-created. */
  onRepair?: () => void;
}

export class InterceptionError extends Error {
  readonly code = "INTERCEPTION_FAILED";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "InterceptionError";
  }
}

const isLoopback = (ip: string): boolean => ip.startsWith("127.");

/**
 * Interception of pod traffic to the metadata address, as aad-pod-identity v1.8 (CONTRACT.md): nat chain
 * `aad-metadata` with `! -s 127.0.0.1/32 -d <metadata-ip>/32 -p tcp --dport <port> -j DNAT --to-destination
 * <nmi>` and `-j RETURN`, jumped to from PREROUTING position 1. When the target is loopback, `route_localnet` is
 * enabled (else the kernel drops DNAT to 127.0.0.1 for routed packets) together with kube-proxy's protective rule
 * that drops non-DNATed traffic to 127.0.0.0/8 arriving from outside (filter chain `aad-metadata` from INPUT).
 * `ensure()` compares what is installed with what should be, and re-creates on any drift.
 */
export class IptablesManager {
  readonly #o: IptablesManagerOptions;
  #backend: IptablesBackend | undefined;
  #installed = false;

  constructor(options: IptablesManagerOptions) {
    this.#o = options;
  }

  get installed(): boolean {
    return this.#installed;
  }

  /** The nat rules, as `iptables -S` prints them. */
  expectedNatRules(): string[] {
    const { metadataIp, metadataPort, targetIp, targetPort } = this.#o;
    return [
      `-N ${NMI_CHAIN}`,
      `-A ${NMI_CHAIN} ! -s 127.0.0.1/32 -d ${metadataIp}/32 -p tcp -m tcp --dport ${metadataPort} -j DNAT --to-destination ${targetIp}:${targetPort}`,
      `-A ${NMI_CHAIN} -j RETURN`,
    ];
  }

  expectedFilterRules(): string[] {
    return [
      `-N ${NMI_CHAIN}`,
      `-A ${NMI_CHAIN} ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "podidentity: block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`,
    ];
  }

  get #needsLocalnet(): boolean {
    return isLoopback(this.#o.targetIp);
  }

  /** kube-proxy's heuristic: the backend that already holds more rules is the one the node uses. */
  async backend(): Promise<IptablesBackend> {
    if (this.#backend !== undefined) return this.#backend;
    const wanted = this.#o.backend ?? "auto";
    if (wanted !== "auto") return (this.#backend = wanted);
    const count = async (save: string): Promise<number> => {
      try {
        // All tables, as kube-proxy's iptables-wrapper and the image's entrypoint count.
        const r = await this.#o.run(save, []);
        return r.code === 0 ? r.stdout.split("\n").filter((l) => l.startsWith("-")).length : -1;
      } catch {
        return -1; // not installed
      }
    };
    const [nft, legacy] = await Promise.all([count("iptables-nft-save"), count("iptables-legacy-save")]);
    this.#backend = nft < 0 && legacy < 0 ? "iptables" : legacy > nft ? "iptables-legacy" : nft >= 0 ? "iptables-nft" : "iptables";
    this.#o.logger.info({ backend: this.#backend, nftRules: nft, legacyRules: legacy }, "iptables backend chosen");
    return this.#backend;
  }

  async #ipt(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return this.#o.run(await this.backend(), ["-w", "5", ...args]);
  }

  async #must(args: string[]): Promise<string> {
    const r = await this.#ipt(args);
    if (r.code !== 0) throw new InterceptionError(`iptables ${args.join(" ")} failed (${r.code}): ${r.stderr.trim()}`);
    return r.stdout;
  }

  async #chainRules(table: string): Promise<string[] | undefined> {
    const r = await this.#ipt(["-t", table, "-S", NMI_CHAIN]);
    if (r.code !== 0) return undefined;
    return r.stdout.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  }

  async #hasJump(table: string, from: string): Promise<boolean> {
    return (await this.#ipt(["-t", table, "-C", from, "-j", NMI_CHAIN])).code === 0;
  }

  /** Whether everything is installed exactly as expected. */
  async check(): Promise<boolean> {
    const same = (a: string[] | undefined, b: string[]): boolean => a !== undefined && a.length === b.length && a.every((l, i) => l === b[i]);
    if (!same(await this.#chainRules("nat"), this.expectedNatRules()) || !(await this.#hasJump("nat", "PREROUTING"))) return false;
    if (this.#needsLocalnet) {
      if (!same(await this.#chainRules("filter"), this.expectedFilterRules()) || !(await this.#hasJump("filter", "INPUT"))) return false;
    }
    return true;
  }

  /** Installs or repairs; returns what it did. Throws InterceptionError when iptables refuses. */
  async ensure(): Promise<"unchanged" | "installed" | "repaired"> {
    if (await this.check()) {
      this.#installed = true;
      return "unchanged";
    }
    const wasInstalled = this.#installed;
    try {
      await this.#install();
    } catch (error) {
      this.#installed = false;
      throw error instanceof InterceptionError ? error : new InterceptionError(`installing the ${NMI_CHAIN} rules failed: ${(error as Error).message}`, { cause: error });
    }
    this.#installed = true;
    if (wasInstalled) {
      this.#o.onRepair?.();
      this.#o.logger.warn({ chain: NMI_CHAIN }, "iptables rules had drifted; re-created");
      return "repaired";
    }
    this.#o.logger.info({ chain: NMI_CHAIN, target: `${this.#o.targetIp}:${this.#o.targetPort}` }, "iptables interception installed");
    return "installed";
  }

  async #install(): Promise<void> {
    if (this.#needsLocalnet) {
      // Without route_localnet the kernel drops routed packets DNATed to 127.0.0.1 as martians. Read before
      // writing: in a container without privileged mode /proc/sys is read-only, and kube-proxy usually set it already.
      const current = await this.#o.run("sysctl", ["-n", "net.ipv4.conf.all.route_localnet"]);
      if (current.code !== 0 || current.stdout.trim() !== "1") {
        const r = await this.#o.run("sysctl", ["-w", "net.ipv4.conf.all.route_localnet=1"]);
        if (r.code !== 0) {
          throw new InterceptionError(
            `sysctl net.ipv4.conf.all.route_localnet=1 failed: ${r.stderr.trim()} ` +
              "(set it on the node, or give --nmi-listen-address the node's own IP so no loopback DNAT is needed)",
          );
        }
      }
      await this.#rebuild("filter", "INPUT", this.expectedFilterRules());
    }
    await this.#rebuild("nat", "PREROUTING", this.expectedNatRules());
  }

  /** Flush and re-create the chain (v1.8: any drift → flush and re-create), then make sure of the jump. */
  async #rebuild(table: string, from: string, rules: string[]): Promise<void> {
    if ((await this.#chainRules(table)) === undefined) await this.#must(["-t", table, "-N", NMI_CHAIN]);
    else await this.#must(["-t", table, "-F", NMI_CHAIN]);
    for (const rule of rules.slice(1)) await this.#must(["-t", table, ...splitRule(rule)]);
    if (!(await this.#hasJump(table, from))) await this.#must(["-t", table, "-I", from, "1", "-j", NMI_CHAIN]);
  }

  /** Removes jumps and chains (SIGTERM). Safe to call when nothing is installed. */
  async remove(): Promise<void> {
    const tables: Array<[string, string]> = [["nat", "PREROUTING"]];
    if (this.#needsLocalnet) tables.push(["filter", "INPUT"]);
    for (const [table, from] of tables) {
      // A jump may have been added twice by someone else; remove all of them.
      for (let i = 0; i < 10 && (await this.#hasJump(table, from)); i++) await this.#must(["-t", table, "-D", from, "-j", NMI_CHAIN]);
      if ((await this.#chainRules(table)) !== undefined) {
        await this.#must(["-t", table, "-F", NMI_CHAIN]);
        await this.#must(["-t", table, "-X", NMI_CHAIN]);
      }
    }
    this.#installed = false;
    this.#o.logger.info({ chain: NMI_CHAIN }, "iptables interception removed");
  }

  /**
   * Deletes conntrack entries to the metadata address (`--enable-conntrack-deletion`): connections a pod opened
   * before interception existed would otherwise keep reaching IMDS directly. Returns the entries deleted.
   */
  async deleteConntrackEntries(): Promise<number> {
    const r = await this.#o.run("conntrack", ["-D", "-p", "tcp", "--orig-dst", this.#o.metadataIp, "--orig-port-dst", String(this.#o.metadataPort)]);
    const m = /(\d+) flow entries have been deleted/.exec(r.stderr + r.stdout);
    if (m === null && r.code !== 0) throw new InterceptionError(`conntrack -D failed (${r.code}): ${r.stderr.trim()}`);
    return m ? Number(m[1]) : 0;
  }
}

/** Splits one `iptables -S` line into arguments, keeping quoted comments whole. */
export function splitRule(rule: string): string[] {
  const args: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  for (let m = re.exec(rule); m !== null; m = re.exec(rule)) args.push(m[1] ?? m[2]!);
  return args;
}
