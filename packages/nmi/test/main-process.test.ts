import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { API_GROUP_VERSION, NODENAME_LABEL, customResourceDefinitions } from "@podidentity/api";
import { AzureCloud, KubeApiServer } from "@podidentity/testbed";
import { NMI_NOT_READY_TAINT } from "../src/index";
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

describe("podidentity-nmi binary", () => {
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

  it("a pod's call to 169.254.169.254 is answered by NMI with its identity; SIGTERM removes the rules", async () => {
    await deleteStaleNamespaces();
    netns = new NetnsSet();
    const { node, pod, podIp } = await netns.nodeAndPod();
    // A veth between the host (emulators) and the node namespace (NMI).
    const octet = 100 + Math.floor(Math.random() * 100);
    const hostIp = `10.78.${octet}.1`;
    await sh(["ip", "link", "add", `hx${netns.id}`, "type", "veth", "peer", "name", `hn${netns.id}`]);
    await sh(["ip", "link", "set", `hn${netns.id}`, "netns", node]);
    await sh(["ip", "addr", "add", `${hostIp}/24`, "dev", `hx${netns.id}`]);
    await sh(["ip", "link", "set", `hx${netns.id}`, "up"]);
    await sh(["ip", "-n", node, "addr", "add", `10.78.${octet}.2/24`, "dev", `hn${netns.id}`]);
    await sh(["ip", "-n", node, "link", "set", `hn${netns.id}`, "up"]);

    cloud = await AzureCloud.create();
    kube = new KubeApiServer({ tls: cloud.ca, host: hostIp });
    await kube.start();
    for (const crd of customResourceDefinitions()) kube.seed(crd as never);
    kube.seed({ apiVersion: "v1", kind: "Namespace", metadata: { name: "shop" } });
    kube.seed({ apiVersion: "v1", kind: "Node", metadata: { name: "node-a" }, spec: { taints: [{ ...NMI_NOT_READY_TAINT }] } });
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

    child = spawn(
      "ip",
      ["netns", "exec", node, process.execPath, MAIN, "--node", "node-a", "--kubeconfig", join(dir, "kubeconfig"), "--upstream-imds", imds.url, "--kubelet-config", join(dir, "no-kubelet-config"), "--http-probe-port", "18085", "--prometheus-port", "19090", "--enable-conntrack-deletion", "--log-level", "debug"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const lines: string[] = [];
    await new Promise<void>((resolveReady, reject) => {
      let buffer = "";
      child!.stdout!.on("data", (d: Buffer) => {
        buffer += d.toString();
        const parts = buffer.split("\n");
        buffer = parts.pop()!;
        for (const line of parts) {
          lines.push(line);
          if (line.includes('"NMI ready"')) resolveReady();
        }
      });
      child!.once("exit", (code) => reject(new Error(`NMI exited with ${code}: ${lines.join("\n")}`)));
    });
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();

    // The pod calls the metadata address like any IMDS client, and gets its identity from NMI.
    const out = await sh(["ip", "netns", "exec", pod, "curl", "-sS", "-m", "10", "-i", "-H", "Metadata: true", "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"]);
    expect(out).toMatch(/^HTTP\/1.1 200/);
    expect(out).toMatch(/x-podidentity-nmi: 0\.1\.0/i);
    expect(JSON.parse(out.slice(out.indexOf("{"))).client_id).toBe(uai.clientId);
    expect(await sh(["ip", "netns", "exec", node, "curl", "-s", "http://127.0.0.1:18085/readyz"])).toContain("readyz check passed");
    expect(await sh(["ip", "netns", "exec", node, "curl", "-s", "http://127.0.0.1:19090/metrics"])).toContain('podidentity_nmi_requests_total{route="token",status="200",code="ok"} 1');
    // Interception is live, so the startup taint is gone.
    const nodeObject = kube.getObject("nodes", undefined, "node-a") as { spec?: { taints?: unknown[] } };
    expect(nodeObject.spec?.taints ?? []).toEqual([]);
    // Debug logs say which pod got which identity, with the client ID redacted; no token ever lands in them.
    const token = JSON.parse(out.slice(out.indexOf("{"))).access_token as string;
    const served = await eventually(() => lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l["msg"] === "token served"), "the 'token served' log line");
    expect(served).toMatchObject({ pod: "shop/web-1", identity: "shop/kv-reader", clientId: `${uai.clientId.slice(0, 4)}…${uai.clientId.slice(-4)}` });
    expect(lines.join("\n")).not.toContain(token);
    expect(lines.join("\n")).not.toContain(uai.clientId);

    const exited = new Promise<number | null>((r) => child!.once("exit", (code) => r(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(await sh(["ip", "netns", "exec", node, "iptables", "-t", "nat", "-S"])).not.toContain("aad-metadata");
  }, 30_000);
});
