import pino from "pino";
import { request } from "undici";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { execRunner } from "../src/interception/command-runner";
import { resolveDnatTarget } from "../src/interception/dnat-target";
import { IptablesManager, InterceptionError, METADATA_GUARD_COMMENT, NMI_CHAIN } from "../src/interception/iptables-manager";
import { Cluster, NODE, eventually } from "./helpers/cluster";
import { NetnsSet, deleteStaleNamespaces, netnsUnavailableReason, sh } from "./helpers/netns";

const reason = await netnsUnavailableReason();
if (reason !== undefined && process.env["CI"] === "true") {
  // CI runs as root with iptables installed: a skipped interception suite there hides a broken feature.
  throw new Error(`interception tests must run under CI=true, but cannot: ${reason}`);
}
if (reason !== undefined) console.warn(`skipping interception tests: ${reason}`);

const logger = pino({ level: "silent" });

/** The default target in these tests: the node namespace's own address (NetnsSet.nodeAndPod). */
const NODE_IP = "10.77.0.1";

/**
 * Runs commands in `ns` as NMI's container does by default: /proc/sys mounted read-only (its own mount namespace,
 * so nothing else sees the read-only mount). A sysctl write there fails with EROFS, as in a non-privileged pod.
 */
const readOnlyProcSys = (ns: string): string[] => [
  "ip", "netns", "exec", ns,
  "unshare", "-m", "--propagation", "private",
  "sh", "-c", 'mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec "$@"', "read-only-proc-sys",
];

function manager(ns: string, targetIp: string | (() => Promise<string>) = NODE_IP, prefix: string[] = ["ip", "netns", "exec", ns]): IptablesManager {
  return new IptablesManager({ metadataIp: "169.254.169.254", metadataPort: 80, targetIp, targetPort: 2579, run: execRunner(prefix), logger });
}

async function rules(ns: string, table: "nat" | "filter"): Promise<string[]> {
  return (await sh(["ip", "netns", "exec", ns, "iptables", "-t", table, "-S"])).split("\n").filter((l) => l.includes(NMI_CHAIN));
}
const natRules = (ns: string): Promise<string[]> => rules(ns, "nat");

const routeLocalnet = async (ns: string): Promise<string> => (await sh(["ip", "netns", "exec", ns, "sysctl", "-n", "net.ipv4.conf.all.route_localnet"])).trim();
const setRouteLocalnet = (ns: string, value: 0 | 1): Promise<string> => sh(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", `net.ipv4.conf.all.route_localnet=${value}`]);

/** curl's exit code and output: 0 = answered, 7 = connection refused, 28 = timed out. */
async function curl(ns: string, url: string): Promise<{ code: number; out: string }> {
  const r = await execRunner(["ip", "netns", "exec", ns])("curl", ["-sS", "--connect-timeout", "3", "-m", "5", url]);
  return { code: r.code, out: r.stdout };
}

/** A stand-in for NMI in `ns` on 0.0.0.0:2579: answers with the caller's address, and `/seen` lists every caller so far. */
const ECHO_SERVER = `const seen = []; require("http").createServer((q, r) => { if (q.url === "/seen") return r.end(JSON.stringify(seen)); seen.push(q.socket.remoteAddress); r.end("nmi saw " + q.socket.remoteAddress); }).listen(2579, "0.0.0.0", () => console.log("ready"))`;

// Every step is an iptables call that takes the machine-wide xtables lock (-w): while other suites run theirs (CI runs
// them together) a test waits its turn many times over, so the hang guard is 60 s, not the default 20 s.
describe.skipIf(reason !== undefined)("iptables interception (inside network namespaces)", { timeout: 60_000 }, () => {
  let netns: NetnsSet;
  beforeAll(deleteStaleNamespaces);
  beforeEach(() => {
    netns = new NetnsSet();
  });
  afterEach(async () => netns.cleanup());
  afterAll(deleteStaleNamespaces);

  it("by default DNATs to the node's own address and guards NMI's port in filter/INPUT, with route_localnet 0 and /proc/sys read-only", async () => {
    const ns = await netns.add("node");
    await setRouteLocalnet(ns, 0);
    const m = manager(ns, NODE_IP, readOnlyProcSys(ns));
    expect(await m.ensure()).toBe("installed");
    expect(await natRules(ns)).toEqual([
      "-N aad-metadata",
      "-A PREROUTING -j aad-metadata",
      "-A aad-metadata ! -s 127.0.0.1/32 -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.77.0.1:2579",
      "-A aad-metadata -j RETURN",
    ]);
    expect(await rules(ns, "filter")).toEqual([
      "-N aad-metadata",
      "-A INPUT -j aad-metadata",
      "-A FORWARD -j aad-metadata",
      `-A aad-metadata -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -m comment --comment "${METADATA_GUARD_COMMENT}" -j REJECT --reject-with tcp-reset`,
      "-A aad-metadata -p tcp -m tcp --dport 2579 -m conntrack --ctstate DNAT --ctorigdst 169.254.169.254 --ctorigdstport 80 -j RETURN",
      "-A aad-metadata -s 127.0.0.1/32 -i lo -p tcp -m tcp --dport 2579 -j RETURN",
      '-A aad-metadata -p tcp -m tcp --dport 2579 -m comment --comment "podidentity: NMI answers only intercepted metadata traffic and 127.0.0.1" -j REJECT --reject-with tcp-reset',
    ]);
    // The jumps are at position 1, ahead of anything the node had.
    expect((await sh(["ip", "netns", "exec", ns, "iptables", "-t", "filter", "-S", "INPUT"])).split("\n")[1]).toBe("-A INPUT -j aad-metadata");
    expect((await sh(["ip", "netns", "exec", ns, "iptables", "-t", "filter", "-S", "FORWARD"])).split("\n")[1]).toBe("-A FORWARD -j aad-metadata");
    expect(await routeLocalnet(ns)).toBe("0");
    expect(await m.ensure()).toBe("unchanged");
  });

  it("the target can be found lazily (NMI reads its Node); a failure to find it fails ensure() with InterceptionError", async () => {
    const ns = await netns.add("node");
    let calls = 0;
    const m = manager(ns, async () => {
      calls++;
      return NODE_IP;
    });
    await m.ensure();
    await m.ensure();
    expect(calls).toBe(1);
    expect((await natRules(ns)).join("\n")).toContain("--to-destination 10.77.0.1:2579");
    await m.remove();

    const failing = manager(ns, () => Promise.reject(new Error("nodes \"n\" is forbidden")));
    const error = await failing.ensure().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InterceptionError);
    expect((error as Error).message).toMatch(/finding the address to DNAT metadata traffic to failed: nodes "n" is forbidden/);
    await expect(manager(ns, "fe80::1").ensure()).rejects.toThrow(/must be an IPv4 address/);
    expect(await natRules(ns)).toEqual([]);
  });

  it("legacy loopback target (--nmi-listen-address=127.0.0.1): route_localnet turned on, kube-proxy's localnet rule in filter/INPUT", async () => {
    const ns = await netns.add("node");
    await setRouteLocalnet(ns, 0);
    const m = manager(ns, "127.0.0.1");
    expect(await m.ensure()).toBe("installed");
    expect(await natRules(ns)).toContain("-A aad-metadata ! -s 127.0.0.1/32 -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 127.0.0.1:2579");
    expect(await routeLocalnet(ns)).toBe("1");
    expect(await rules(ns, "filter")).toEqual([
      "-N aad-metadata",
      "-A INPUT -j aad-metadata",
      "-A FORWARD -j aad-metadata",
      `-A aad-metadata -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -m comment --comment "${METADATA_GUARD_COMMENT}" -j REJECT --reject-with tcp-reset`,
      '-A aad-metadata ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "podidentity: block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
    ]);
    expect(await m.ensure()).toBe("unchanged");
  });

  it("legacy loopback target with a read-only /proc/sys: works when the node already has route_localnet on, else a clear error", async () => {
    const ns = await netns.add("node");
    await setRouteLocalnet(ns, 1);
    expect(await manager(ns, "127.0.0.1", readOnlyProcSys(ns)).ensure()).toBe("installed");

    await setRouteLocalnet(ns, 0);
    const m = manager(ns, "127.0.0.1", readOnlyProcSys(ns));
    await m.remove();
    await expect(m.ensure()).rejects.toThrow(/--nmi-listen-address=127\.0\.0\.1 DNATs to loopback.*route_localnet=1 failed.*leave --nmi-listen-address unset/);
    expect(await routeLocalnet(ns)).toBe("0");
  });

  it("legacy loopback target: leaves route_localnet alone when the node already has it on (the write is never attempted)", async () => {
    const ns = await netns.add("node");
    await sh(["ip", "netns", "exec", ns, "sysctl", "-w", "net.ipv4.conf.all.route_localnet=1"]);
    const base = execRunner(["ip", "netns", "exec", ns]);
    let writes = 0;
    const readOnlyProcSys: typeof base = (file, args) => {
      if (file === "sysctl" && args[0] === "-w") {
        writes++;
        return Promise.resolve({ code: 255, stdout: "", stderr: "sysctl: permission denied on key \"net.ipv4.conf.all.route_localnet\"" });
      }
      return base(file, args);
    };
    const m = new IptablesManager({ metadataIp: "169.254.169.254", metadataPort: 80, targetIp: "127.0.0.1", targetPort: 2579, run: readOnlyProcSys, logger });
    expect(await m.ensure()).toBe("installed");
    expect(writes).toBe(0);

    await sh(["ip", "netns", "exec", ns, "sysctl", "-w", "net.ipv4.conf.all.route_localnet=0"]);
    await m.remove();
    await expect(m.ensure()).rejects.toThrow(/route_localnet=1 failed.*--nmi-listen-address/);
    expect(writes).toBe(1);
  });

  it("repairs the rules after someone deletes or changes them", async () => {
    const ns = await netns.add("node");
    const m = manager(ns);
    await m.ensure();
    await sh(["ip", "netns", "exec", ns, "iptables", "-t", "nat", "-D", NMI_CHAIN, "1"]);
    expect(await m.check()).toBe(false);
    expect(await m.ensure()).toBe("repaired");
    await sh(["ip", "netns", "exec", ns, "iptables", "-t", "nat", "-D", "PREROUTING", "-j", NMI_CHAIN]);
    await sh(["ip", "netns", "exec", ns, "iptables", "-t", "nat", "-A", NMI_CHAIN, "-j", "ACCEPT"]);
    expect(await m.ensure()).toBe("repaired");
    expect(await m.check()).toBe(true);
    expect((await natRules(ns)).length).toBe(4);
    // the port guard too: a deleted REJECT, or a missing INPUT jump
    await sh(["ip", "netns", "exec", ns, "iptables", "-t", "filter", "-D", NMI_CHAIN, "3"]);
    expect(await m.check()).toBe(false);
    expect(await m.ensure()).toBe("repaired");
    await sh(["ip", "netns", "exec", ns, "iptables", "-t", "filter", "-D", "INPUT", "-j", NMI_CHAIN]);
    expect(await m.ensure()).toBe("repaired");
    // the metadata guard: a deleted guard rule, or a missing FORWARD jump
    await sh(["ip", "netns", "exec", ns, "iptables", "-t", "filter", "-D", NMI_CHAIN, "1"]);
    expect(await m.check()).toBe(false);
    expect(await m.ensure()).toBe("repaired");
    await sh(["ip", "netns", "exec", ns, "iptables", "-t", "filter", "-D", "FORWARD", "-j", NMI_CHAIN]);
    expect(await m.check()).toBe(false);
    expect(await m.ensure()).toBe("repaired");
    expect((await rules(ns, "filter")).length).toBe(7);
  });

  it("removes the jumps and both chains, whichever mode installed them", async () => {
    const ns = await netns.add("node");
    for (const target of [NODE_IP, "127.0.0.1"]) {
      await manager(ns, target).ensure();
      // a manager that never resolved a target (a cleanup) removes them all the same
      await manager(ns, () => Promise.reject(new Error("not needed"))).remove();
      expect(await natRules(ns)).toEqual([]);
      expect(await rules(ns, "filter")).toEqual([]);
    }
    await manager(ns).remove(); // idempotent
  });

  it("a pod's traffic to 169.254.169.254:80 reaches NMI on the node's address with route_localnet 0, keeping the pod's source IP; straight to <node-ip>:2579 it is refused", async () => {
    const { node, pod, podIp, nodeIp } = await netns.nodeAndPod();
    await setRouteLocalnet(node, 0);
    await manager(node, nodeIp, readOnlyProcSys(node)).ensure();
    await netns.spawnNode(node, ECHO_SERVER);

    expect(await curl(pod, "http://169.254.169.254/metadata/identity/oauth2/token")).toEqual({ code: 0, out: `nmi saw ${podIp}` });
    // Straight to NMI's port, from the pod and from the node's own address: a TCP reset, so curl reports
    // "connection refused" (7) at once, and NMI never sees the request.
    expect((await curl(pod, `http://${nodeIp}:2579/metadata/identity/oauth2/token`)).code).toBe(7);
    expect((await curl(node, `http://${nodeIp}:2579/metadata/identity/oauth2/token`)).code).toBe(7);
    // 127.0.0.1 on the node (hostNetwork callers, /host/token) is let through.
    expect(await curl(node, "http://127.0.0.1:2579/host/token")).toEqual({ code: 0, out: "nmi saw 127.0.0.1" });
    const seen = JSON.parse((await curl(node, "http://127.0.0.1:2579/seen")).out) as string[];
    expect(seen).toEqual([podIp, "127.0.0.1"]);
    expect(await routeLocalnet(node)).toBe("0");
  });

  it("legacy loopback target: a pod's traffic reaches NMI on 127.0.0.1 (route_localnet on), keeping the pod's source IP", async () => {
    const { node, pod, podIp } = await netns.nodeAndPod();
    await manager(node, "127.0.0.1").ensure();
    await netns.spawnNode(node, `require("http").createServer((q, r) => r.end("nmi saw " + q.socket.remoteAddress)).listen(2579, "127.0.0.1", () => console.log("ready"))`);
    expect(await curl(pod, "http://169.254.169.254/metadata/identity/oauth2/token")).toEqual({ code: 0, out: `nmi saw ${podIp}` });
  });

  it("deletes stale conntrack entries to the metadata address", async () => {
    const ns = await netns.add("node");
    expect(await manager(ns).deleteConntrackEntries()).toBe(0);
  });

  it("NMI re-checks the rules every interval, reports readiness from them, and keeps them on stop when no DaemonSet says it was uninstalled", async () => {
    const ns = await netns.add("node");
    const c = await Cluster.start();
    try {
      const m = manager(ns);
      const nmi = await c.startNmi({ interception: m, iptablesUpdateIntervalMs: 100 });
      // NMI was given its interception, so it listens on loopback only (nothing of its own guards the port).
      expect(new URL(nmi.url).hostname).toBe("127.0.0.1");
      expect(nmi.readiness().ready).toBe(true);
      const ready = await request(`${nmi.probeUrl}/readyz`);
      expect(ready.statusCode).toBe(200);
      await ready.body.text();
      await sh(["ip", "netns", "exec", ns, "iptables", "-t", "nat", "-F", NMI_CHAIN]);
      await sh(["ip", "netns", "exec", ns, "iptables", "-t", "filter", "-F", NMI_CHAIN]);
      await eventually(async () => ((await m.check()) ? true : undefined), "rules repaired by the loop");
      // No pod name, so no owning DaemonSet to ask: the rules outlive NMI (fail closed); ownership.test.ts covers the rest.
      expect(await nmi.stop()).toMatchObject({ interception: "kept", reason: "owner-unknown" });
      expect(await m.check()).toBe(true);
      await m.remove();
      expect(await natRules(ns)).toEqual([]);
    } finally {
      await c.close();
    }
  });

  it("a failure to install is fatal for start()", async () => {
    const c = await Cluster.start();
    try {
      const broken = new IptablesManager({ metadataIp: "169.254.169.254", metadataPort: 80, targetIp: "127.0.0.1", targetPort: 2579, run: execRunner(["ip", "netns", "exec", "podid-nmi-does-not-exist"]), logger });
      await expect(c.startNmi({ interception: broken })).rejects.toThrow();
    } finally {
      await c.close();
    }
  });
});

describe("the DNAT target (resolveDnatTarget)", () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await Cluster.start();
  });
  afterAll(async () => c.close());

  const local = new Set(["127.0.0.1", "10.240.0.4", "10.244.0.1"]);
  const resolve = (input: { listenAddress?: string; hostIp?: string }) =>
    resolveDnatTarget({ listenAddress: input.listenAddress ?? "0.0.0.0", hostIp: input.hostIp, nodeName: NODE, kube: c.kubeClient, isNodeAddress: (ip) => local.has(ip) });
  const setAddresses = (addresses: { type: string; address: string }[]): void => {
    c.kube.patchObject("nodes", undefined, NODE, { status: { addresses } }, { subresource: "status" });
  };

  it("0.0.0.0 without --host-ip: the Node's first IPv4 InternalIP that is an address of this node", async () => {
    setAddresses([
      { type: "Hostname", address: NODE },
      { type: "InternalIP", address: "fd00::4" },
      { type: "InternalIP", address: "10.240.0.4" },
    ]);
    expect(await resolve({})).toEqual({ ip: "10.240.0.4", source: "node-internal-ip" });
  });

  it("0.0.0.0 with --host-ip (env HOST_IP): that address, once it is the node's", async () => {
    expect(await resolve({ hostIp: "10.244.0.1" })).toEqual({ ip: "10.244.0.1", source: "host-ip" });
    await expect(resolve({ hostIp: "10.9.9.9" })).rejects.toThrow(/--host-ip=10\.9\.9\.9 \(or env HOST_IP\) is not an address of this node/);
  });

  it("no usable InternalIP: a startup error that names --host-ip", async () => {
    setAddresses([{ type: "InternalIP", address: "fd00::4" }]);
    await expect(resolve({})).rejects.toThrow(/Node node-a: it has no IPv4 InternalIP; set --host-ip \(env HOST_IP\)/);
    setAddresses([{ type: "InternalIP", address: "10.1.1.1" }]);
    const error = await resolve({}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InterceptionError);
    expect((error as Error).message).toMatch(/its IPv4 InternalIPs 10\.1\.1\.1 are not addresses of this node; set --host-ip/);
  });

  it("a Node NMI cannot read: a startup error that names --host-ip", async () => {
    const error = await resolveDnatTarget({ listenAddress: "0.0.0.0", hostIp: undefined, nodeName: "no-such-node", kube: c.kubeClient, isNodeAddress: () => true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InterceptionError);
    expect((error as Error).message).toMatch(/reading Node no-such-node for its InternalIP failed .*; set --host-ip/);
  });

  it("an explicit --nmi-listen-address: loopback is v1.8's mode, another address must be the node's", async () => {
    expect(await resolve({ listenAddress: "127.0.0.1" })).toEqual({ ip: "127.0.0.1", source: "nmi-listen-address" });
    expect(await resolve({ listenAddress: "10.240.0.4", hostIp: "10.244.0.1" })).toEqual({ ip: "10.240.0.4", source: "nmi-listen-address" });
    await expect(resolve({ listenAddress: "10.9.9.9" })).rejects.toThrow(/--nmi-listen-address=10\.9\.9\.9 is not an address of this node/);
  });
});
