import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { API_GROUP_VERSION, NODENAME_LABEL, customResourceDefinitions } from "@podidentity/api";
import { AzureCloud, KubeApiServer } from "@podidentity/testbed";
import { NMI_NOT_READY_TAINT } from "../src/interception/node-taint";
import { eventually } from "./helpers/cluster";
import { NetnsSet, deleteStaleNamespaces, netnsUnavailableReason, sh } from "./helpers/netns";

const run = promisify(execFile);
// Built into node_modules/.test-main, not dist: other packages' tests (e2e) may be running dist/main.js meanwhile.
const MAIN = resolve(import.meta.dirname, "../node_modules/.test-main/main.js");
const reason = await netnsUnavailableReason();
if (reason !== undefined && process.env["CI"] === "true") throw new Error(`main-process tests must run under CI=true, but cannot: ${reason}`);

beforeAll(async () => {
  // The bundled entry point is what the DaemonSet runs (same tsup build as dist/main.js).
  await run("pnpm", ["exec", "tsup", "src/main.ts", "--no-config", "--format", "esm", "--target", "node22", "--out-dir", "node_modules/.test-main", "--silent"], { cwd: resolve(import.meta.dirname, "..") });
}, 120_000);

// Tests here start NMI as a process, some several times: the bound is a hang guard, not a speed bound (start-up takes
// a fraction of a second on an idle machine, several times that while other suites share the cores).
describe("podidentity-nmi binary", { timeout: 60_000 }, () => {
  it("prints its version", async () => {
    const { stdout } = await run(process.execPath, [MAIN, "--version"]);
    expect(stdout.trim()).toBe("0.1.0");
  });

  it("refuses to start without --node, exiting 1 with a JSON log line", async () => {
    const error = await run(process.execPath, [MAIN, "--kubeconfig", "/nonexistent"], { env: { ...process.env, NODE_NAME: "" } }).catch((e: { code: number; stdout: string }) => e);
    expect((error as { code: number }).code).toBe(1);
    const line = JSON.parse((error as { stdout: string }).stdout.trim().split("\n").pop()!);
    expect(line.level).toBe(60);
  });
});

/** v1.8.17 chart 4.1.x's nmi-daemonset.yaml with every value set (and pre-1.7's --host-ip), as the kubelet passes them. */
const V18_CHART_NMI_ARGS = [
  "--host-ip=10.240.0.4",
  "--node=aks-nodepool1-0",
  "--http-probe-port=8085",
  "--ipt-update-interval-sec=60",
  "--MICNamespace=kube-system",
  "--retry-attempts-for-created=16",
  "--retry-attempts-for-assigned=4",
  "--find-identity-retry-interval=5",
  "--enableScaleFeatures=true",
  "--prometheus-port=9090",
  "--block-instance-metadata=true",
  "--metadata-header-required=true",
  "--log-format=json",
  "-v=5",
  "--operation-mode=managed",
  "--forceNamespaced",
  "--allow-network-plugin-kubenet=true",
  "--kubelet-config=/etc/default/kubelet",
  "--custom-user-agent=contoso",
  "--set-retry-after-header=true",
  "--enable-conntrack-deletion=true",
];

describe("podidentity-nmi binary with aad-pod-identity v1.8's arguments", { timeout: 60_000 }, () => {
  const startWith = async (args: string[]): Promise<Record<string, unknown>[]> => {
    // No kubeconfig there: NMI gets past its flags and stops at the first thing that needs the cluster.
    const error = await run(process.execPath, [MAIN, ...args, "--kubeconfig", "/nonexistent/kubeconfig"], { env: { ...process.env, NODE_NAME: "" } }).catch((e: { code: number; stdout: string; stderr: string }) => e);
    const { code, stdout, stderr } = error as { code: number; stdout: string; stderr: string };
    expect(stderr, "commander refused an argument").not.toMatch(/unknown option|error:/);
    expect(code).toBe(1);
    return stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
  };

  it("chart 4.1.x's full argument list: one warning per ignored flag with its reason, -v mapped, then the cluster is what fails", async () => {
    const lines = await startWith(V18_CHART_NMI_ARGS);
    const ignored = lines.filter((l) => l["msg"] === "aad-pod-identity v1.8 flag ignored").map((l) => l["flag"]);
    expect(ignored).toEqual(["--MICNamespace", "--retry-attempts-for-created", "--retry-attempts-for-assigned", "--find-identity-retry-interval", "--enableScaleFeatures", "--custom-user-agent", "--set-retry-after-header"]);
    for (const l of lines.filter((x) => x["msg"] === "aad-pod-identity v1.8 flag ignored")) expect(String(l["reason"]).length).toBeGreaterThan(20);
    const mapped = lines.filter((l) => l["msg"] === "aad-pod-identity v1.8 flag mapped").map((l) => l["flag"]);
    expect(mapped).toEqual(["--log-format", "-v"]);
    expect(lines.find((l) => l["flag"] === "-v")?.["mappedTo"]).toContain("log level debug");
    expect(lines.at(-1)).toMatchObject({ level: 60, msg: "NMI could not start" });
  });

  it("v1.8's deploy/infra/deployment-rbac.yaml arguments, and klog's one-dash flags", async () => {
    const lines = await startWith(["--node=aks-nodepool1-0", "--http-probe-port=8085", "--enableScaleFeatures=true", "--metadata-header-required=true", "-logtostderr", "-v", "2"]);
    expect(lines.filter((l) => String(l["msg"]).startsWith("aad-pod-identity v1.8 flag")).map((l) => l["flag"])).toEqual(["--enableScaleFeatures", "-logtostderr", "-v"]);
    expect(lines.at(-1)).toMatchObject({ level: 60, msg: "NMI could not start" });
  });

  it("a value v1.8 would also refuse is a usage error naming the flag, exit 1", async () => {
    const error = await run(process.execPath, [MAIN, "--node=n", "-v=loud"]).catch((e: { code: number; stderr: string }) => e);
    expect((error as { code: number }).code).toBe(1);
    expect((error as { stderr: string }).stderr).toContain(`-v: klog's verbosity must be an integer, got "loud"`);
  });
});

describe.skipIf(reason !== undefined)("podidentity-nmi on a node (network namespaces), end to end", () => {
  let netns: NetnsSet | undefined;
  let child: ChildProcess | undefined;
  let cloud: AzureCloud | undefined;
  let kube: KubeApiServer | undefined;
  let dir: string | undefined;

  afterEach(async () => {
    if (child?.exitCode === null) {
      const exited = new Promise((r) => child!.once("exit", r));
      child.kill("SIGKILL");
      await exited;
    }
    await netns?.cleanup();
    await cloud?.close();
    await kube?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    await deleteStaleNamespaces();
  });

  /**
   * A node namespace with a pod, the emulators on the host reached over a veth, a bound and Assigned pod, and NMI
   * started in the node namespace as the DaemonSet runs it. `faults` are set on the API server before NMI starts;
   * `lines` fills with NMI's log as it writes.
   */
  async function nodeWithNmi(faults: (api: KubeApiServer) => void = () => undefined) {
    await deleteStaleNamespaces();
    netns = new NetnsSet();
    const { node, pod, nodeIp, podIp } = await netns.nodeAndPod();
    // A veth between the host (emulators) and the node namespace (NMI).
    const octet = 100 + Math.floor(Math.random() * 100);
    const hostIp = `10.78.${octet}.1`;
    await sh(["ip", "link", "add", `hx${netns.id}`, "type", "veth", "peer", "name", `hn${netns.id}`]);
    await sh(["ip", "link", "set", `hn${netns.id}`, "netns", node]);
    await sh(["ip", "addr", "add", `${hostIp}/24`, "dev", `hx${netns.id}`]);
    await sh(["ip", "link", "set", `hx${netns.id}`, "up"]);
    await sh(["ip", "-n", node, "addr", "add", `10.78.${octet}.2/24`, "dev", `hn${netns.id}`]);
    await sh(["ip", "-n", node, "link", "set", `hn${netns.id}`, "up"]);
    // As on an Azure node: the node forwards pods' metadata traffic towards IMDS (here the host side of the veth),
    // so what the redirect does not take meets the guard in FORWARD.
    await sh(["ip", "netns", "exec", node, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    await sh(["ip", "-n", node, "route", "add", "169.254.169.254/32", "via", hostIp]);

    cloud = await AzureCloud.create();
    kube = new KubeApiServer({ tls: cloud.ca, host: hostIp });
    await kube.start();
    for (const crd of customResourceDefinitions()) kube.seed(crd as never);
    kube.seed({ apiVersion: "v1", kind: "Namespace", metadata: { name: "shop" } });
    kube.seed({ apiVersion: "v1", kind: "Node", metadata: { name: "node-a" }, spec: { taints: [{ ...NMI_NOT_READY_TAINT }] }, status: { addresses: [{ type: "InternalIP", address: nodeIp }] } });
    const vm = cloud.addVirtualMachine("node-a");
    const imds = await cloud.startImds("node-a", vm, { host: hostIp });
    const uai = cloud.createUserAssignedIdentity("kv-reader");
    vm.applyIdentityPatch({ type: "UserAssigned", userAssignedIdentities: { [uai.id]: {} } }, cloud.registry, { effectiveAtMs: 0 });
    kube.seed({ apiVersion: API_GROUP_VERSION, kind: "AzureIdentity", metadata: { name: "kv-reader", namespace: "shop" }, spec: { type: 0, resourceID: uai.id, clientID: uai.clientId } });
    kube.seed({ apiVersion: API_GROUP_VERSION, kind: "AzureIdentityBinding", metadata: { name: "kv-reader", namespace: "shop" }, spec: { azureIdentity: "kv-reader", selector: "web" } });
    kube.seed({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "web-1", namespace: "shop", labels: { aadpodidbinding: "web" } },
      spec: { nodeName: "node-a", containers: [{ name: "app", image: "app:1" }] },
      status: { phase: "Running", podIP: podIp },
    });
    kube.seed({
      apiVersion: API_GROUP_VERSION,
      kind: "AzureAssignedIdentity",
      metadata: { name: "web-1-shop-kv-reader", namespace: "shop", labels: { [NODENAME_LABEL]: "node-a" } },
      spec: { pod: "web-1", podNamespace: "shop", nodename: "node-a" },
      status: { status: "Assigned" },
    });
    dir = await mkdtemp(join(tmpdir(), "nmi-main-"));
    await kube.writeKubeconfig(join(dir, "kubeconfig"));

    faults(kube);
    child = spawn(
      "ip",
      ["netns", "exec", node, process.execPath, MAIN, "--node", "node-a", "--kubeconfig", join(dir, "kubeconfig"), "--upstream-imds", imds.url, "--kubelet-config", join(dir, "no-kubelet-config"), "--http-probe-port", "18085", "--prometheus-port", "19090", "--enable-conntrack-deletion", "--log-level", "debug"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const lines: string[] = [];
    let buffer = "";
    child.stdout!.on("data", (d: Buffer) => {
      buffer += d.toString();
      const parts = buffer.split("\n");
      buffer = parts.pop()!;
      lines.push(...parts);
    });
    const exited = new Promise<number | null>((r) => child!.once("exit", (code) => r(code)));
    const logged = (msg: string) => vi.waitFor(() => expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toContain(msg), { timeout: 20_000, interval: 50 });
    return { node, pod, kube, imds, uai, lines, exited, logged };
  }

  /** The pod's token request through the metadata address, as curl sees it: exit code 7 is a refused connection. */
  const podCurl = (pod: string) => run("ip", ["netns", "exec", pod, "curl", "-sS", "-m", "5", "-i", "-H", "Metadata: true", "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"]).then(
    (r) => ({ code: 0, out: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout, stderr: e.stderr }),
  );

  it("a pod's call to 169.254.169.254 is answered by NMI with its identity; after SIGTERM the rules stay and refuse the pod; `cleanup` removes them", async () => {
    const { node, pod, kube: api, imds, uai, lines, exited, logged } = await nodeWithNmi();
    await Promise.race([logged("NMI ready"), exited.then((code) => Promise.reject(new Error(`NMI exited with ${code}: ${lines.join("\n")}`)))]);
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();

    // The pod calls the metadata address like any IMDS client, and gets its identity from NMI.
    const out = await sh(["ip", "netns", "exec", pod, "curl", "-sS", "-m", "10", "-i", "-H", "Metadata: true", "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"]);
    expect(out).toMatch(/^HTTP\/1.1 200/);
    expect(out).toMatch(/x-podidentity-nmi: 0\.1\.0/i);
    expect(JSON.parse(out.slice(out.indexOf("{"))).client_id).toBe(uai.clientId);
    expect(await sh(["ip", "netns", "exec", node, "curl", "-s", "http://127.0.0.1:18085/readyz"])).toContain("readyz check passed");
    expect(await sh(["ip", "netns", "exec", node, "curl", "-s", "http://127.0.0.1:19090/metrics"])).toContain('podidentity_nmi_requests_total{route="token",status="200",code="ok"} 1');
    // Interception is live, so the startup taint is gone.
    const nodeObject = api.getObject("nodes", undefined, "node-a") as { spec?: { taints?: unknown[] } };
    expect(nodeObject.spec?.taints ?? []).toEqual([]);
    // Debug logs say which pod got which identity, with the client ID redacted; no token ever lands in them.
    const token = JSON.parse(out.slice(out.indexOf("{"))).access_token as string;
    const served = await eventually(() => lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l["msg"] === "token served"), "the 'token served' log line");
    expect(served).toMatchObject({ pod: "shop/web-1", identity: "shop/kv-reader", clientId: `${uai.clientId.slice(0, 4)}…${uai.clientId.slice(-4)}` });
    expect(lines.join("\n")).not.toContain(token);
    expect(lines.join("\n")).not.toContain(uai.clientId);

    child!.kill("SIGTERM");
    expect(await exited).toBe(0);
    // No POD_NAME, so no DaemonSet to ask whether this is an uninstall: NMI keeps its rules and says why.
    const shutdown = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => String(l["msg"]).startsWith("shutdown: keeping the iptables rules"));
    expect(shutdown).toMatchObject({ level: 30, interception: "keep", reason: "owner-unknown" });
    expect(await sh(["ip", "netns", "exec", node, "iptables", "-t", "nat", "-S"])).toContain("-A PREROUTING -j aad-metadata");
    // The pod's request is refused (nothing listens on the DNAT target), never answered by the node's IMDS.
    const imdsTokenCalls = imds.counters.requests;
    const refused = await podCurl(pod);
    expect(refused.code, refused.stderr).toBe(7); // curl: failed to connect
    expect(imds.counters.requests).toBe(imdsTokenCalls);

    // `podidentity-nmi cleanup` (what docs/install.md's uninstall runs on a node) removes both tables' chains and jumps.
    const cleaned = await run("ip", ["netns", "exec", node, process.execPath, MAIN, "cleanup"]);
    expect(JSON.parse(cleaned.stdout.trim().split("\n").pop()!)).toMatchObject({ msg: "NMI's iptables rules removed" });
    expect(await sh(["ip", "netns", "exec", node, "iptables", "-t", "nat", "-S"])).not.toContain("aad-metadata");
    expect(await sh(["ip", "netns", "exec", node, "iptables", "-t", "filter", "-S"])).not.toContain("aad-metadata");
  }, 30_000);

  it("SIGTERM while NMI is still starting (the API server fails its binding list): exit 0, the guard stays, the pod is refused and never reaches IMDS", async () => {
    const { node, pod, kube: api, imds, lines, exited, logged } = await nodeWithNmi((a) => a.failNext({ verb: "list", resource: "azureidentitybindings", code: 503, count: 1_000_000 }));
    await vi.waitFor(() => expect(api.countRequests({ verb: "list", resource: "azureidentitybindings" })).toBeGreaterThanOrEqual(2), { timeout: 20_000, interval: 50 });
    // Not listening yet: the guard, installed before the informers sync, refuses the pod.
    expect((await podCurl(pod)).code).toBe(7);
    child!.kill("SIGTERM");
    expect(await exited).toBe(0);
    await logged("shutting down");
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed.find((l) => String(l["msg"]).startsWith("shutdown: keeping the iptables rules"))).toMatchObject({ interception: "keep", reason: "owner-unknown" });
    expect(parsed.filter((l) => (l["level"] as number) >= 50)).toEqual([]);
    expect(parsed.some((l) => l["msg"] === "NMI ready")).toBe(false);
    expect(await sh(["ip", "netns", "exec", node, "iptables", "-t", "filter", "-S"])).toContain("aad-metadata");
    const refused = await podCurl(pod);
    expect(refused.code, refused.stderr).toBe(7);
    expect(imds.counters.requests).toBe(0);
    await run("ip", ["netns", "exec", node, process.execPath, MAIN, "cleanup"]);
  }, 30_000);
});

describe.skipIf(reason !== undefined)("podidentity-nmi cleanup", () => {
  let netns: NetnsSet | undefined;
  afterEach(async () => {
    await netns?.cleanup();
    await deleteStaleNamespaces();
  });

  const cleanup = (ns: string, prefix: string[] = []) => run("ip", ["netns", "exec", ns, ...prefix, process.execPath, MAIN, "cleanup"]);

  it("removes rules of any shape from both tables and both backends (a killed NMI, an older version), then finds nothing and still exits 0", async () => {
    netns = new NetnsSet();
    const ns = await netns.add("node");
    const ipt = (backend: string, args: string) => sh(["ip", "netns", "exec", ns, backend, "-w", "5", ...args.split(" ")]);
    for (const backend of ["iptables-nft", "iptables-legacy"]) {
      await ipt(backend, "-t nat -N aad-metadata");
      await ipt(backend, "-t nat -A aad-metadata ! -s 127.0.0.1/32 -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 127.0.0.1:2579");
      await ipt(backend, "-t nat -I PREROUTING 1 -j aad-metadata");
      await ipt(backend, "-t nat -A PREROUTING -d 169.254.169.254/32 -j aad-metadata");
      await ipt(backend, "-t nat -A OUTPUT -j aad-metadata");
      await ipt(backend, "-t filter -N aad-metadata");
      await ipt(backend, "-t filter -A aad-metadata -p tcp -m tcp --dport 2579 -j REJECT --reject-with tcp-reset");
      await ipt(backend, "-t filter -I INPUT 1 -j aad-metadata");
      await ipt(backend, "-t filter -I FORWARD 1 -j aad-metadata"); // the metadata guard's jump
      // someone else's rule stays
      await ipt(backend, "-t nat -A PREROUTING -d 10.0.0.1/32 -j RETURN");
    }
    const first = await cleanup(ns);
    const report = JSON.parse(first.stdout.trim().split("\n").pop()!) as { backends: string[]; removed: string[] };
    expect(report.backends).toEqual(["iptables-nft", "iptables-legacy"]);
    expect(report.removed).toHaveLength(2 * (3 + 1 + 2 + 1)); // per backend: 3 nat jumps, nat chain, 2 filter jumps, filter chain
    for (const backend of ["iptables-nft", "iptables-legacy"]) {
      for (const table of ["nat", "filter"]) expect(await ipt(backend, `-t ${table} -S`)).not.toContain("aad-metadata");
      expect(await ipt(backend, "-t nat -S")).toContain("-A PREROUTING -d 10.0.0.1/32 -j RETURN");
    }
    const second = await cleanup(ns);
    expect(JSON.parse(second.stdout.trim().split("\n").pop()!)).toMatchObject({ msg: "no NMI iptables rules on this node: nothing to remove", removed: [] });
  });

  it("without NET_ADMIN it exits 1 with an error that says what it needs", async () => {
    netns = new NetnsSet();
    const ns = await netns.add("node");
    const error = (await cleanup(ns, ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]).catch((e: unknown) => e)) as { code: number; stdout: string };
    expect(error.code).toBe(1);
    const line = JSON.parse(error.stdout.trim().split("\n").pop()!) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 50, msg: "cleanup failed: NMI's iptables rules may still be on this node", code: "INTERCEPTION_FAILED" });
    expect(String(line["err"])).toMatch(/needs root with NET_ADMIN/);
  });
});
