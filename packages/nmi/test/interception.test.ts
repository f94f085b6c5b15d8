import pino from "pino";
import { request } from "undici";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { IptablesManager, NMI_CHAIN, execRunner } from "../src/index";
import { Cluster, eventually } from "./helpers/cluster";
import { NetnsSet, deleteStaleNamespaces, netnsUnavailableReason, sh } from "./helpers/netns";

const reason = await netnsUnavailableReason();
if (reason !== undefined && process.env["CI"] === "true") {
  // CI runs as root with iptables installed: a skipped interception suite there hides a broken feature.
  throw new Error(`interception tests must run under CI=true, but cannot: ${reason}`);
}
if (reason !== undefined) console.warn(`skipping interception tests: ${reason}`);

const logger = pino({ level: "silent" });

function manager(ns: string, targetIp = "127.0.0.1", targetPort = 2579): IptablesManager {
  return new IptablesManager({ metadataIp: "169.254.169.254", metadataPort: 80, targetIp, targetPort, run: execRunner(["ip", "netns", "exec", ns]), logger });
}

async function natRules(ns: string): Promise<string[]> {
  return (await sh(["ip", "netns", "exec", ns, "iptables", "-t", "nat", "-S"])).split("\n").filter((l) => l.includes(NMI_CHAIN));
}

describe.skipIf(reason !== undefined)("iptables interception (inside network namespaces)", () => {
  let netns: NetnsSet;
  beforeAll(deleteStaleNamespaces);
  beforeEach(() => {
    netns = new NetnsSet();
  });
  afterEach(async () => netns.cleanup());
  afterAll(deleteStaleNamespaces);

  it("installs the aad-metadata chain exactly as CONTRACT.md, jumped to from PREROUTING", async () => {
    const ns = await netns.add("node");
    const m = manager(ns);
    expect(await m.ensure()).toBe("installed");
    expect(await natRules(ns)).toEqual([
      "-N aad-metadata",
      "-A PREROUTING -j aad-metadata",
      "-A aad-metadata ! -s 127.0.0.1/32 -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 127.0.0.1:2579",
      "-A aad-metadata -j RETURN",
    ]);
    // Loopback target: route_localnet on, and kube-proxy's drop rule for non-DNATed traffic to 127.0.0.0/8.
    expect((await sh(["ip", "netns", "exec", ns, "sysctl", "-n", "net.ipv4.conf.all.route_localnet"])).trim()).toBe("1");
    const filter = await sh(["ip", "netns", "exec", ns, "iptables", "-t", "filter", "-S"]);
    expect(filter).toContain("-A INPUT -j aad-metadata");
    expect(filter).toContain("! -s 127.0.0.0/8 -d 127.0.0.0/8");
    expect(await m.ensure()).toBe("unchanged");
  });

  it("leaves route_localnet alone when the node already has it on, as in a container with a read-only /proc/sys", async () => {
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
  });

  it("removes the jump and the chains", async () => {
    const ns = await netns.add("node");
    const m = manager(ns);
    await m.ensure();
    await m.remove();
    expect(await natRules(ns)).toEqual([]);
    expect(await sh(["ip", "netns", "exec", ns, "iptables", "-t", "filter", "-S"])).not.toContain(NMI_CHAIN);
    await m.remove(); // idempotent
  });

  it("redirects a pod's traffic to 169.254.169.254:80 to NMI's loopback address, keeping the pod's source IP", async () => {
    const { node, pod, podIp } = await netns.nodeAndPod();
    await manager(node).ensure();
    await netns.spawnNode(node, `require("http").createServer((q, r) => r.end("nmi saw " + q.socket.remoteAddress)).listen(2579, "127.0.0.1", () => console.log("ready"))`);
    const out = await sh(["ip", "netns", "exec", pod, "curl", "-sS", "-m", "5", "http://169.254.169.254/metadata/identity/oauth2/token"]);
    expect(out).toBe(`nmi saw ${podIp}`);
  });

  it("deletes stale conntrack entries to the metadata address", async () => {
    const ns = await netns.add("node");
    expect(await manager(ns).deleteConntrackEntries()).toBe(0);
  });

  it("NMI re-checks the rules every interval, reports readiness from them, and removes them on stop", async () => {
    const ns = await netns.add("node");
    const c = await Cluster.start();
    try {
      const m = new IptablesManager({ metadataIp: "169.254.169.254", metadataPort: 80, targetIp: "127.0.0.1", targetPort: 2579, run: execRunner(["ip", "netns", "exec", ns]), logger });
      const nmi = await c.startNmi({ interception: m, iptablesUpdateIntervalMs: 100 });
      expect(nmi.readiness().ready).toBe(true);
      const ready = await request(`${nmi.probeUrl}/readyz`);
      expect(ready.statusCode).toBe(200);
      await ready.body.text();
      await sh(["ip", "netns", "exec", ns, "iptables", "-t", "nat", "-F", NMI_CHAIN]);
      await eventually(async () => ((await m.check()) ? true : undefined), "rules repaired by the loop", 5_000);
      await nmi.stop();
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
