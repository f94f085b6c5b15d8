import { isIP } from "node:net";
import type { Logger } from "pino";
import type { CommandRunner } from "./command-runner";

export const NMI_CHAIN = "aad-metadata";

/** The comment on the filter rule that refuses pod metadata traffic no DNAT sent to NMI (the fail-closed guard). */
export const METADATA_GUARD_COMMENT = "podidentity: metadata traffic not redirected to NMI is refused";

/** Where the filter chain is jumped to from: INPUT guards NMI's port, FORWARD holds the metadata guard's traffic. */
const FILTER_JUMPS = ["INPUT", "FORWARD"] as const;

export type IptablesBackend = "iptables" | "iptables-nft" | "iptables-legacy";

export interface IptablesManagerOptions {
  metadataIp: string;
  metadataPort: number;
  /**
   * Where intercepted traffic goes: NMI's address, or a function that finds it, called once, at the first
   * `ensure()` (NMI reads its node's address from the API server; see dnat-target.ts). A loopback address is
   * aad-pod-identity v1.8's mode and needs `route_localnet`; any other address must be the node's own.
   */
  targetIp: string | (() => Promise<string>);
  /** NMI's port: the DNAT target's port, and the port the filter chain guards. */
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

export const isLoopbackIPv4 = (ip: string): boolean => ip.startsWith("127.");

/**
 * Interception of pod traffic to the metadata address (docs/contract.md, "Interception"), in two chains named
 * `aad-metadata` as aad-pod-identity v1.8's, so its cleanup and operators' habits still apply:
 *
 * - nat, jumped to from PREROUTING position 1: `! -s 127.0.0.1/32 -d <metadata-ip>/32 -p tcp --dport <port>
 *   -j DNAT --to-destination <target>:<nmi-port>`, then `-j RETURN` (v1.8's chain).
 * - filter, jumped to from INPUT and FORWARD position 1. Its first rule refuses (TCP reset) any connection to
 *   `<metadata-ip>:<port>` that reaches it: DNATed traffic arrives with the node's address as destination, so this
 *   matches only pod metadata traffic whose DNAT is missing (aad-pod-identity v1.8's NMI deleted the shared nat
 *   chain as it stopped, an operator flushed nat, NMI waits for its port): refused, never answered by the node's
 *   IMDS. Host-network callers (NMI itself) go through OUTPUT and are not affected. With the node's own address as target (the default), NMI listens
 *   on every IPv4 address, and this chain guards its port: a connection is let through (RETURN) only when
 *   conntrack says it was DNATed from the metadata address, or when it comes from 127.0.0.1 on `lo`; any other
 *   connection to the port is rejected with a TCP reset. A reset rather than DROP: the port then looks exactly
 *   like a closed one (which a scanner learns nothing from, while a port that drops stands out as filtered), and
 *   a client pointed at `<node-ip>:<nmi-port>` by mistake fails at once instead of hanging until its timeout.
 * - With a loopback target (v1.8's mode, `--nmi-listen-address=127.0.0.1`) the kernel drops routed packets
 *   DNATed to 127.0.0.1 unless `route_localnet` is 1: NMI reads it and writes it only when it is 0 (a read-only
 *   /proc/sys then gives a clear error), and the filter chain holds kube-proxy's protective rule instead, which
 *   drops non-DNATed traffic to 127.0.0.0/8 arriving from outside.
 *
 * `ensure()` compares what is installed with what should be, and re-creates on any drift.
 */
export class IptablesManager {
  readonly #o: IptablesManagerOptions;
  #backend: IptablesBackend | undefined;
  #installed = false;
  #targetIp: string | undefined;
  #redirect = true;

  constructor(options: IptablesManagerOptions) {
    this.#o = options;
  }

  get installed(): boolean {
    return this.#installed;
  }

  /**
   * Whether the nat redirect is managed (default true). While false (NMI waits for its port, port-handover.ts),
   * `check()`/`ensure()` manage only the filter chain and leave the nat chain to whoever holds it.
   */
  get redirect(): boolean {
    return this.#redirect;
  }

  set redirect(enabled: boolean) {
    // Turning the redirect on is an install (logged as such), not a repair of drift.
    if (enabled && !this.#redirect) this.#installed = false;
    this.#redirect = enabled;
  }

  /** The DNAT target's address, found once (the first `ensure()`); throws InterceptionError when it cannot be. */
  async targetIp(): Promise<string> {
    if (this.#targetIp !== undefined) return this.#targetIp;
    const { targetIp } = this.#o;
    let ip: string;
    try {
      ip = typeof targetIp === "string" ? targetIp : await targetIp();
    } catch (error) {
      throw error instanceof InterceptionError ? error : new InterceptionError(`finding the address to DNAT metadata traffic to failed: ${(error as Error).message}`, { cause: error });
    }
    if (isIP(ip) !== 4) throw new InterceptionError(`the DNAT target must be an IPv4 address (the metadata address is IPv4), got "${ip}"`);
    return (this.#targetIp = ip);
  }

  /** The nat rules, as `iptables -S` prints them. */
  async expectedNatRules(): Promise<string[]> {
    const { metadataIp, metadataPort, targetPort } = this.#o;
    return [
      `-N ${NMI_CHAIN}`,
      `-A ${NMI_CHAIN} ! -s 127.0.0.1/32 -d ${metadataIp}/32 -p tcp -m tcp --dport ${metadataPort} -j DNAT --to-destination ${await this.targetIp()}:${targetPort}`,
      `-A ${NMI_CHAIN} -j RETURN`,
    ];
  }

  /**
   * The filter rules, as `iptables -S` prints them: the metadata guard, then the port guard, or kube-proxy's
   * localnet rule for a loopback target.
   */
  async expectedFilterRules(): Promise<string[]> {
    const { metadataIp, metadataPort, targetPort } = this.#o;
    const guard = `-A ${NMI_CHAIN} -d ${metadataIp}/32 -p tcp -m tcp --dport ${metadataPort} -m comment --comment "${METADATA_GUARD_COMMENT}" -j REJECT --reject-with tcp-reset`;
    if (isLoopbackIPv4(await this.targetIp())) {
      return [
        `-N ${NMI_CHAIN}`,
        guard,
        `-A ${NMI_CHAIN} ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "podidentity: block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`,
      ];
    }
    const port = `-p tcp -m tcp --dport ${targetPort}`;
    return [
      `-N ${NMI_CHAIN}`,
      guard,
      `-A ${NMI_CHAIN} ${port} -m conntrack --ctstate DNAT --ctorigdst ${metadataIp} --ctorigdstport ${metadataPort} -j RETURN`,
      `-A ${NMI_CHAIN} -s 127.0.0.1/32 -i lo ${port} -j RETURN`,
      `-A ${NMI_CHAIN} ${port} -m comment --comment "podidentity: NMI answers only intercepted metadata traffic and 127.0.0.1" -j REJECT --reject-with tcp-reset`,
    ];
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

  /** Whether everything is installed exactly as expected (the nat chain only while `redirect` is on). */
  async check(): Promise<boolean> {
    return (!this.#redirect || (await this.#natInPlace())) && (await this.#filterInPlace());
  }

  async #natInPlace(): Promise<boolean> {
    return same(await this.#chainRules("nat"), await this.expectedNatRules()) && (await this.#hasJump("nat", "PREROUTING"));
  }

  async #filterInPlace(): Promise<boolean> {
    if (!same(await this.#chainRules("filter"), await this.expectedFilterRules())) return false;
    for (const from of FILTER_JUMPS) if (!(await this.#hasJump("filter", from))) return false;
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
    if (this.#redirect) this.#o.logger.info({ chain: NMI_CHAIN, target: `${await this.targetIp()}:${this.#o.targetPort}` }, "iptables interception installed");
    else this.#o.logger.info({ chain: NMI_CHAIN }, "iptables guards installed; the nat redirect waits until NMI listens");
    return "installed";
  }

  async #install(): Promise<void> {
    if (isLoopbackIPv4(await this.targetIp())) {
      // Without route_localnet the kernel drops routed packets DNATed to 127.0.0.1 as martians. Read before
      // writing: in a container without privileged mode /proc/sys is read-only, and kube-proxy usually set it already.
      const current = await this.#o.run("sysctl", ["-n", "net.ipv4.conf.all.route_localnet"]);
      if (current.code !== 0 || current.stdout.trim() !== "1") {
        const r = await this.#o.run("sysctl", ["-w", "net.ipv4.conf.all.route_localnet=1"]);
        if (r.code !== 0) {
          throw new InterceptionError(
            `--nmi-listen-address=${await this.targetIp()} DNATs to loopback, which needs net.ipv4.conf.all.route_localnet=1, and ` +
              `sysctl -w net.ipv4.conf.all.route_localnet=1 failed: ${r.stderr.trim()} ` +
              "(set it on the node, or leave --nmi-listen-address unset: the default DNATs to the node's own address and needs no route_localnet)",
          );
        }
      }
    }
    // The guards first: the DNAT sends pods to NMI's port only once that port is guarded. A table in place is left
    // alone: rebuilding flushes its chain, and a flushed filter chain lets pods' metadata traffic through to IMDS
    // for as long as the refill takes (while the redirect is being installed, nothing else stops it).
    if (!(await this.#filterInPlace())) await this.#rebuild("filter", FILTER_JUMPS, await this.expectedFilterRules());
    if (this.#redirect && !(await this.#natInPlace())) await this.#rebuild("nat", ["PREROUTING"], await this.expectedNatRules());
  }

  /** Flush and re-create the chain (v1.8: any drift → flush and re-create), then make sure of the jumps. */
  async #rebuild(table: string, from: readonly string[], rules: string[]): Promise<void> {
    if ((await this.#chainRules(table)) === undefined) await this.#must(["-t", table, "-N", NMI_CHAIN]);
    else await this.#must(["-t", table, "-F", NMI_CHAIN]);
    for (const rule of rules.slice(1)) await this.#must(["-t", table, ...splitRule(rule)]);
    for (const chain of from) if (!(await this.#hasJump(table, chain))) await this.#must(["-t", table, "-I", chain, "1", "-j", NMI_CHAIN]);
  }

  /**
   * Removes jumps and chains of both tables, whichever mode installed them (so a cleanup needs no target address);
   * with `redirect` off only the filter table's (the nat chain then belongs to whoever holds NMI's port).
   * Safe to call when nothing is installed.
   */
  async remove(): Promise<void> {
    const tables: Array<[string, string]> = [
      ...(this.#redirect ? [["nat", "PREROUTING"] as [string, string]] : []),
      ["filter", "INPUT"],
      ["filter", "FORWARD"],
    ];
    for (const [table, from] of tables) {
      // A jump may have been added twice by someone else; remove all of them.
      for (let i = 0; i < 10 && (await this.#hasJump(table, from)); i++) await this.#must(["-t", table, "-D", from, "-j", NMI_CHAIN]);
    }
    for (const table of this.#redirect ? ["nat", "filter"] : ["filter"]) {
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

const same = (a: string[] | undefined, b: string[]): boolean => a !== undefined && a.length === b.length && a.every((l, i) => l === b[i]);

/** Splits one `iptables -S` line into arguments, keeping quoted comments whole. */
export function splitRule(rule: string): string[] {
  const args: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  for (let m = re.exec(rule); m !== null; m = re.exec(rule)) args.push(m[1] ?? m[2]!);
  return args;
}
