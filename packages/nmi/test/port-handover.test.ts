import { connect as connectTcp, createServer, type Server } from "node:net";
import { Writable } from "node:stream";
import pino from "pino";
import { request } from "undici";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { execRunner } from "../src/interception/command-runner";
import { IptablesManager, NMI_CHAIN } from "../src/interception/iptables-manager";
import { Nmi } from "../src/nmi";
import { listenWhenFree } from "../src/interception/port-handover";
import { Cluster, NODE, eventually } from "./helpers/cluster";
import { NetnsSet, deleteStaleNamespaces, netnsUnavailableReason, sh } from "./helpers/netns";

/** A process holding a loopback port, as aad-pod-identity v1.8's NMI holds 127.0.0.1:2579. */
async function blocker(port = 0): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => s.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  return { server, port: (server.address() as { port: number }).port };
}
const release = (server: Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

/** NMI's JSON log lines, kept for assertions. */
function capturedLogger(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n")) if (l.trim() !== "") lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: "info" }, stream), lines };
}

async function text(url: string): Promise<{ status: number; text: string }> {
  const res = await request(url);
  return { status: res.statusCode, text: await res.body.text() };
}

/** An ops route of an NMI whose start() is under way: undefined until its ops listeners are up. */
async function ops(nmi: Nmi, which: "probe" | "metrics", path: string): Promise<{ status: number; text: string } | undefined> {
  try {
    return await text(`${which === "probe" ? nmi.probeUrl : nmi.metricsUrl}${path}`);
  } catch {
    return undefined; // not listening yet
  }
}

function nmiOn(c: Cluster, port: number, logger: pino.Logger, interception: IptablesManager | null = null, opsPorts = { httpProbePort: 0, prometheusPort: 0 }): Nmi {
  return new Nmi({
    kube: c.kubeClient,
    nodeName: NODE,
    port,
    listenAddress: "127.0.0.1",
    ...opsPorts,
    upstreamImds: c.imds.url,
    interception,
    checkNetworkPlugin: false,
    nodeAddresses: ["127.0.0.1", "::1"],
    logger,
  });
}

describe("listenWhenFree", () => {
  it("retries while the port is held (EADDRINUSE), reports the wait once, and listens once it is free", async () => {
    const held = await blocker();
    const ours = createServer();
    let waited = 0;
    let sleeps = 0;
    const result = await listenWhenFree(
      () =>
        new Promise<void>((resolve, reject) => {
          ours.once("error", reject);
          ours.listen(held.port, "127.0.0.1", () => {
            ours.off("error", reject);
            resolve();
          });
        }),
      {
        onWaiting: (error) => {
          waited++;
          expect(error.code).toBe("EADDRINUSE");
        },
        // The holder lets go after the third retry: the attempt after that must succeed.
        sleep: async () => {
          if (++sleeps === 3) await release(held.server);
        },
      },
    );
    expect(result).toEqual({ listening: true, busyAttempts: 3 });
    expect(waited).toBe(1);
    expect((ours.address() as { port: number }).port).toBe(held.port);
    await release(ours);
  });

  it("throws any other listen error at once, and an abort ends the wait without listening", async () => {
    const notMine = Object.assign(new Error("listen EADDRNOTAVAIL"), { code: "EADDRNOTAVAIL" });
    await expect(listenWhenFree(() => Promise.reject(notMine))).rejects.toBe(notMine);

    const stop = new AbortController();
    let attempts = 0;
    const busy = Object.assign(new Error("listen EADDRINUSE"), { code: "EADDRINUSE" });
    const result = await listenWhenFree(
      () => {
        attempts++;
        return Promise.reject(busy);
      },
      { signal: stop.signal, sleep: async () => void (attempts === 2 && stop.abort()) },
    );
    expect(result).toEqual({ listening: false, busyAttempts: 2 });
  });
});

describe("NMI waits for a port another process holds", { timeout: 30_000 }, () => {
  let c: Cluster;
  beforeEach(async () => {
    c = await Cluster.start();
  });
  afterEach(async () => c.close());

  it("stays up but not ready (check `listener`, metric 1, one warning), then takes the port the moment it is free", async () => {
    const held = await blocker();
    const { logger, lines } = capturedLogger();
    const nmi = nmiOn(c, held.port, logger);
    c.nmi = nmi;
    let started = false;
    const starting = nmi.start().then(() => void (started = true));
    const waiting = await eventually(async () => {
      const metrics = await ops(nmi, "metrics", "/metrics");
      return metrics?.text.includes("podidentity_nmi_listener_waiting_for_port 1") === true ? metrics : undefined;
    }, "the wait on the metric");
    expect(waiting.status).toBe(200);
    const ready = await text(`${nmi.probeUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.text).toContain("[-]listener failed");
    // Several attempts later, still one warning, naming the port.
    await eventually(() => (lines.length > 0 && !started ? true : undefined), "a log line");
    const warnings = lines.filter((l) => String(l["msg"]).startsWith("another process holds port"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 40, port: held.port, msg: `another process holds port ${held.port}, e.g. aad-pod-identity v1.8's NMI; waiting for it; pods' metadata traffic stays with it, and is refused if it removes its redirect` });
    expect(started).toBe(false);

    await release(held.server);
    await starting;
    expect(new URL(nmi.url).port).toBe(String(held.port));
    const after = await text(`${nmi.probeUrl}/readyz`);
    expect(after.status).toBe(200);
    expect(after.text).toContain("[+]listener ok");
    expect((await text(`${nmi.metricsUrl}/metrics`)).text).toContain("podidentity_nmi_listener_waiting_for_port 0");
    expect(lines.filter((l) => String(l["msg"]).startsWith("another process holds port"))).toHaveLength(1);
    expect(lines.find((l) => l["msg"] === "the port is free: listening, and taking over the metadata redirect")).toMatchObject({ port: held.port });
  });

  it("listens only once its informers have synced: a pod's connection is refused meanwhile, never answered a wrong 403", async () => {
    // A restarted NMI finds the redirect its predecessor kept: pods' requests reach its port at once. Here the
    // bindings cannot be listed yet (the API server fails them) while the pods can: an NMI listening now would know
    // the pod but no binding, and refuse it for good (403 podidentity_no_binding) instead of a retryable refusal.
    const uai = c.cloud.createUserAssignedIdentity("kv-reader");
    c.pod("web-1", "127.0.0.21", { namespace: "shop", label: "web" });
    c.identity("shop", "kv-reader", uai, { selector: "web" });
    c.assigned({ name: "web-1", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Assigned");
    c.assignOnVm(uai);
    c.kube.failNext({ verb: "list", resource: "azureidentitybindings", count: 1_000, code: 500 });
    const held = await blocker();
    await release(held.server); // a free port NMI will take
    const nmi = nmiOn(c, held.port, capturedLogger().logger);
    c.nmi = nmi;
    const starting = nmi.start();
    await eventually(() => (c.kube.countRequests({ verb: "list", resource: "azureidentitybindings" }) >= 2 ? true : undefined), "two failed lists of the bindings");
    const refused = await new Promise<string>((resolve) => {
      const socket = connectTcp({ host: "127.0.0.1", port: held.port, localAddress: "127.0.0.21" }, () => {
        socket.destroy();
        resolve("connected");
      });
      socket.on("error", (error: Error & { code?: string }) => resolve(error.code ?? error.message));
    });
    expect(refused).toBe("ECONNREFUSED");
    expect((await text(`${nmi.probeUrl}/readyz`)).status).toBe(503);

    c.kube.clearFaults();
    await starting;
    const answer = await c.token("127.0.0.21");
    expect(answer.status, answer.text).toBe(200);
    expect(answer.body).toMatchObject({ client_id: uai.clientId, resource: "https://vault.azure.net" });
  });

  it("probe and metrics ports held (v1.8's NMI uses the same defaults): NMI starts and serves anyway, warns once per port, and takes each port once it is free", async () => {
    const [probe, metrics] = [await blocker(), await blocker()];
    const { logger, lines } = capturedLogger();
    const uai = c.cloud.createUserAssignedIdentity("kv-reader");
    c.pod("web-1", "127.0.0.21", { namespace: "shop", label: "web" });
    c.identity("shop", "kv-reader", uai, { selector: "web" });
    c.assigned({ name: "web-1", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Assigned");
    c.assignOnVm(uai);
    const free = await blocker();
    await release(free.server); // a free IMDS port
    const nmi = nmiOn(c, free.port, logger, null, { httpProbePort: probe.port, prometheusPort: metrics.port });
    c.nmi = nmi;
    await nmi.start();
    // Up and serving tokens while both ops ports are someone else's; what connects to them reaches the holder.
    const answer = await c.token("127.0.0.21");
    expect(answer.status, answer.text).toBe(200);
    await expect(text(`http://127.0.0.1:${probe.port}/readyz`)).rejects.toThrow(); // the blocker drops the connection
    const waits = (): Array<Record<string, unknown>> => lines.filter((l) => /^another process holds NMI's (probe|metrics) port/.test(String(l["msg"])));
    expect(waits().map((l) => [l["level"], l["listener"], l["port"]])).toEqual([
      [40, "probe", probe.port],
      [40, "metrics", metrics.port],
    ]);
    expect(lines.find((l) => l["msg"] === "NMI ready")).not.toHaveProperty("probeUrl");

    await release(probe.server);
    const ready = await eventually(async () => {
      const r = await text(`http://127.0.0.1:${probe.port}/readyz`).catch(() => undefined);
      return r?.status === 200 ? r : undefined;
    }, "NMI's /readyz on the freed probe port");
    expect(ready.text).toContain("[+]listener ok");
    await release(metrics.server);
    const scraped = await eventually(async () => {
      const r = await text(`http://127.0.0.1:${metrics.port}/metrics`).catch(() => undefined);
      return r?.status === 200 ? r : undefined;
    }, "NMI's /metrics on the freed metrics port");
    expect(scraped.text).toContain("podidentity_nmi_listener_waiting_for_port 0");
    // One warning per port however many retries it took, and one line when each port was taken.
    expect(waits()).toHaveLength(2);
    expect(lines.filter((l) => /^NMI's (probe|metrics) port is free: listening$/.test(String(l["msg"]))).map((l) => l["listener"])).toEqual(["probe", "metrics"]);
  });

  it("a stop while the probe and metrics ports are still held ends those waits too: the ports, once free, stay free", async () => {
    const [probe, metrics, free] = [await blocker(), await blocker(), await blocker()];
    await release(free.server);
    const { logger, lines } = capturedLogger();
    const nmi = nmiOn(c, free.port, logger, null, { httpProbePort: probe.port, prometheusPort: metrics.port });
    c.nmi = nmi;
    await nmi.start();
    await nmi.stop();
    // The background waits end on stop (a line each), not at their next retry: nothing listens once the holders go.
    await vi.waitFor(() => expect(lines.filter((l) => /^stopped while waiting for NMI's (probe|metrics) port$/.test(String(l["msg"]))).map((l) => l["listener"]).sort()).toEqual(["metrics", "probe"]));
    await release(probe.server);
    await release(metrics.server);
    for (const port of [probe.port, metrics.port]) await expect(text(`http://127.0.0.1:${port}/readyz`)).rejects.toThrow();
    expect(lines.filter((l) => /port is free: listening$/.test(String(l["msg"])))).toEqual([]);
  });

  it("a stop during the wait ends it: start() returns without listening, stop() completes", async () => {
    const held = await blocker();
    const { logger, lines } = capturedLogger();
    const nmi = nmiOn(c, held.port, logger);
    c.nmi = nmi;
    const starting = nmi.start();
    await eventually(() => (lines.some((l) => String(l["msg"]).startsWith("another process holds port")) ? true : undefined), "the wait");
    expect(await nmi.stop()).toMatchObject({ interception: "none" });
    await starting;
    expect(lines.some((l) => l["msg"] === "stopped while waiting for the port")).toBe(true);
    expect(lines.some((l) => l["msg"] === "NMI ready")).toBe(false);
    await release(held.server);
  });
});

const reason = await netnsUnavailableReason();
if (reason !== undefined && process.env["CI"] === "true") throw new Error(`port handover tests must run under CI=true, but cannot: ${reason}`);

const IMDS_ECHO = `const seen = []; require("http").createServer((q, r) => { if (q.url === "/seen") return r.end(JSON.stringify(seen)); seen.push(q.socket.remoteAddress); r.end("imds saw " + q.socket.remoteAddress); }).listen(80, "169.254.169.254", () => console.log("ready"))`;
const V18_ECHO = `require("http").createServer((q, r) => r.end("v1.8 nmi saw " + q.socket.remoteAddress)).listen(2579, "127.0.0.1", () => console.log("ready"))`;
/** aad-pod-identity v1.8's nat rules (pkg/nmi/iptables/iptables.go), exactly as it adds them. */
const V18_NAT = [
  "-t nat -N aad-metadata",
  "-t nat -A aad-metadata ! -s 127.0.0.1/32 -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 127.0.0.1:2579",
  "-t nat -A aad-metadata -j RETURN",
  "-t nat -I PREROUTING 1 -j aad-metadata",
];
/** v1.8's NMI on SIGTERM: the PREROUTING jump, then the chain. */
const V18_DELETE = ["-t nat -D PREROUTING -j aad-metadata", "-t nat -F aad-metadata", "-t nat -X aad-metadata"];

describe.skipIf(reason !== undefined)("the metadata guard and the port handover (inside network namespaces)", { timeout: 60_000 }, () => {
  let netns: NetnsSet;
  beforeAll(deleteStaleNamespaces);
  beforeEach(() => {
    netns = new NetnsSet();
  });
  afterEach(async () => netns.cleanup());
  afterAll(deleteStaleNamespaces);

  /** node + pod, and an IMDS namespace reached from the node by routing (FORWARD), as on Azure. */
  async function topology(): Promise<{ node: string; pod: string; podIp: string; imds: string }> {
    const { node, pod, podIp } = await netns.nodeAndPod();
    const imds = await netns.add("imds");
    const a = `vi${netns.id}`;
    const b = `vj${netns.id}`;
    await sh(["ip", "link", "add", a, "type", "veth", "peer", "name", b]);
    await sh(["ip", "link", "set", a, "netns", node]);
    await sh(["ip", "link", "set", b, "netns", imds]);
    await sh(["ip", "-n", node, "addr", "add", "10.78.0.1/24", "dev", a]);
    await sh(["ip", "-n", imds, "addr", "add", "10.78.0.2/24", "dev", b]);
    await sh(["ip", "-n", imds, "addr", "add", "169.254.169.254/32", "dev", "lo"]);
    await sh(["ip", "-n", node, "link", "set", a, "up"]);
    await sh(["ip", "-n", imds, "link", "set", b, "up"]);
    await sh(["ip", "-n", node, "route", "add", "169.254.169.254/32", "via", "10.78.0.2"]);
    await sh(["ip", "-n", imds, "route", "add", "10.77.0.0/24", "via", "10.78.0.1"]);
    await sh(["ip", "netns", "exec", node, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    await sh(["ip", "netns", "exec", node, "sysctl", "-q", "-w", "net.ipv4.conf.all.route_localnet=1"]);
    await netns.spawnNode(imds, IMDS_ECHO);
    return { node, pod, podIp, imds };
  }

  /** curl's exit code and output: 0 = answered, 7 = refused (a TCP reset). */
  async function curl(ns: string, url: string): Promise<{ code: number; out: string }> {
    const r = await execRunner(["ip", "netns", "exec", ns])("curl", ["-sS", "--connect-timeout", "3", "-m", "5", url]);
    return { code: r.code, out: r.stdout };
  }
  const ipt = (ns: string, args: string) => sh(["ip", "netns", "exec", ns, "iptables", "-w", "5", ...args.split(" ")]);
  const manager = (node: string) =>
    new IptablesManager({ metadataIp: "169.254.169.254", metadataPort: 80, targetIp: "10.77.0.1", targetPort: 2579, run: execRunner(["ip", "netns", "exec", node]), logger: pino({ level: "silent" }) });

  it("the guard refuses a pod's metadata traffic once no DNAT takes it (FORWARD), and leaves the node's own calls alone", async () => {
    const { node, pod, podIp, imds } = await topology();
    // Control: without rules, the pod reaches the node's IMDS through the node (the guard has something to stop).
    expect(await curl(pod, "http://169.254.169.254/metadata")).toEqual({ code: 0, out: `imds saw ${podIp}` });
    const m = manager(node);
    m.redirect = false;
    expect(await m.ensure()).toBe("installed");
    expect((await curl(pod, "http://169.254.169.254/metadata")).code).toBe(7);
    // The node's own traffic (NMI's, host network) goes through OUTPUT, not the guard.
    expect(await curl(node, "http://169.254.169.254/metadata")).toEqual({ code: 0, out: "imds saw 10.78.0.1" });
    expect(JSON.parse((await curl(imds, "http://169.254.169.254/seen")).out)).toEqual([podIp, "10.78.0.1"]);
  });

  it("NMI waiting for v1.8's port: guards installed, v1.8's redirect left serving pods; v1.8 removes it → refused; port free → NMI's redirect", async () => {
    const { node, pod, podIp, imds } = await topology();
    await netns.spawnNode(node, V18_ECHO);
    for (const rule of V18_NAT) await ipt(node, rule);
    expect(await curl(pod, "http://169.254.169.254/metadata")).toEqual({ code: 0, out: `v1.8 nmi saw ${podIp}` });

    const c = await Cluster.start();
    const held = await blocker(); // v1.8's listener, as NMI (in this process) sees it
    try {
      const m = manager(node);
      const nmi = nmiOn(c, held.port, pino({ level: "silent" }), m);
      c.nmi = nmi;
      const starting = nmi.start();
      await eventually(async () => ((await ops(nmi, "probe", "/readyz"))?.text.includes("[-]listener failed") === true ? true : undefined), "NMI waiting");
      // NMI's guards are in, and v1.8's nat chain is untouched: the pod is still served by v1.8.
      await eventually(async () => ((await ipt(node, "-t filter -S FORWARD")).includes("-j aad-metadata") ? true : undefined), "the guard's jump");
      expect((await ipt(node, "-t nat -S")).split("\n").filter((l) => l.includes(NMI_CHAIN))).toEqual([
        "-N aad-metadata",
        "-A PREROUTING -j aad-metadata",
        "-A aad-metadata ! -s 127.0.0.1/32 -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 127.0.0.1:2579",
        "-A aad-metadata -j RETURN",
      ]);
      expect(await curl(pod, "http://169.254.169.254/metadata")).toEqual({ code: 0, out: `v1.8 nmi saw ${podIp}` });

      // v1.8's NMI gets SIGTERM: it deletes its chain, then lets go of the port. In between, the pod is refused.
      for (const rule of V18_DELETE) await ipt(node, rule);
      expect((await curl(pod, "http://169.254.169.254/metadata")).code).toBe(7);
      await release(held.server);
      await starting;
      expect(await m.check()).toBe(true);
      expect(await ipt(node, "-t nat -S aad-metadata")).toContain("--to-destination 10.77.0.1:2579");
      // The node's IMDS never saw the pod.
      expect(JSON.parse((await curl(imds, "http://169.254.169.254/seen")).out)).toEqual([]);
      // Stopped with no DaemonSet to ask: the rules stay (fail closed), then are removed by hand.
      expect(await nmi.stop()).toMatchObject({ interception: "kept" });
      await m.remove();
    } finally {
      await release(held.server).catch(() => undefined);
      await c.close();
    }
  });
});
