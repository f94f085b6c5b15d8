// Migrating a node from a Helm-installed aad-pod-identity v1.8 (issue 18, item 3; docs/install.md, "Migrating from a
// Helm-installed v1.8"). v1.8's chart 4.1.18 (packages/install/test/fixtures) is installed with a real helm onto the
// cluster's API server; v1.8's NMI on the node is a clearly named stand-in (test/helpers/v18-nmi-standin.ts: v1.8's iptables
// commands, 127.0.0.1:2579). Our NMI starts while the stand-in holds the port (it installs its guards, waits, and
// leaves v1.8's redirect alone), the stand-in gets SIGTERM (deletes its chain, frees the port), ours takes over.
// Throughout, a bound pod and an unbound pod poll for tokens: the unbound pod never gets one, the node's IMDS
// issues tokens to the two NMIs only, and the bound pod's failures are counted (docs/benchmarks.md, "Migration
// handover"). The stand-in also holds v1.8's probe and metrics ports (8085, 9090, our defaults too): ours waits for
// them as well. With PODIDENTITY_E2E_MEASUREMENTS=<file>, the run's figures are appended to that file (one JSON line).
//
// Standard mode (v1.8 chart's default), forceNamespaced=true: the migration guide stops v1.8's MIC and installs
// ours first (steps 1-3), so here our MIC assigns the identity to the scale set, as it would after those steps;
// the node's NMI handover is the same in managed mode. Helm stores its release in a Secret, written as protobuf,
// which the testbed's API server does not read: helm talks to it through the install package's protobuf-Secret
// bridge (packages/install/test/helpers/protobuf-secret-bridge.ts), as packages/install/test/migration-helm.test.ts does.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { appendFile, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { TopologyNode, TopologyPod } from "@podidentity/testbed";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ComponentProcess } from "../src/component-process";
import { E2eCluster, type ClusterIdentity } from "../src/e2e-cluster";
import { startV18NmiStandin } from "./helpers/v18-nmi-standin";
import { startProtobufSecretBridge, type ProtobufSecretBridge } from "../../install/test/helpers/protobuf-secret-bridge";
import { tokenUrl } from "./helpers/pod-clients";

const exec = promisify(execFile);
const CHART = join(import.meta.dirname, "../../install/test/fixtures/aad-pod-identity-chart-4.1.18");
// Where scripts/ensure-helm.sh puts it (keep the version in step with that script).
const HELM = process.env["HELM"] ?? join(process.env["PODIDENTITY_CACHE_DIR"] ?? "/var/cache/podidentity", "helm/2.2.2/helm");
const ci = process.env["CI"] === "true";
const RELEASE = "aad-pod-identity";
/** The control test's own release: it does not depend on the migration test having uninstalled the first. */
const CONTROL_RELEASE = "aad-pod-identity-control";
const V18_NMI_DAEMONSET = `/apis/apps/v1/namespaces/kube-system/daemonsets/${RELEASE}-nmi`;
const CRD_PATH = "/apis/aadpodidentity.k8s.io/v1/namespaces/shop";
/** The AzureIdentity and binding v1.8's chart created from `azureIdentities`: the user's, to keep. */
const USER_OBJECTS = [`${CRD_PATH}/azureidentities/migration-id`, `${CRD_PATH}/azureidentitybindings/migration-id-binding`];
const WAITING = "another process holds port 2579, e.g. aad-pod-identity v1.8's NMI; waiting for it; pods' metadata traffic stays with it, and is refused if it removes its redirect";
const TAKEOVER = "the port is free: listening, and taking over the metadata redirect";
const OPS_WAITING = (listener: string, port: number): string =>
  `another process holds NMI's ${listener} port ${port}, e.g. aad-pod-identity v1.8's NMI; carrying on, and listening there once it is free (until then, what connects to the port reaches that process)`;

/**
 * A pod's app asking for a token in a loop (one request at a time, 100 ms apart — v1.8 asks IMDS on every call, and
 * IMDS allows 20 per second —, 2 s timeout each), one JSON line per attempt: status, NMI's header, error code,
 * whether a token came back and whose it is (its `appid` claim: the identity's client ID; never the token).
 */
const POLLER = `
const http = require("node:http");
const url = process.argv[1];
let n = 0;
const next = () => setTimeout(once, 100);
function once() {
  const req = http.get(url, { headers: { Metadata: "true" }, timeout: 2000, agent: false }, (res) => {
    let body = "";
    res.setEncoding("utf8");
    res.on("data", (c) => (body += c));
    res.on("end", () => {
      let json;
      try { json = JSON.parse(body); } catch {}
      const token = typeof json?.access_token === "string";
      let appid = null;
      try { appid = token ? JSON.parse(Buffer.from(json.access_token.split(".")[1], "base64url").toString("utf8")).appid ?? null : null; } catch {}
      console.log(JSON.stringify({ n: n++, status: res.statusCode, nmi: res.headers["x-podidentity-nmi"] ?? null, error: json?.error ?? null, token, appid }));
      next();
    });
    res.on("error", (e) => { console.log(JSON.stringify({ n: n++, status: null, error: e.code ?? e.message })); next(); });
  });
  req.on("timeout", () => req.destroy(Object.assign(new Error("timeout"), { code: "TIMEOUT" })));
  req.on("error", (e) => { console.log(JSON.stringify({ n: n++, status: null, error: e.code ?? e.message })); next(); });
}
once();
`;

type Attempt = { at: number; status: number | null; nmi: string | null; error: string | null; token: boolean; appid: string | null };
/** The poller's attempts; `nmi` is null unless our NMI answered (its `x-podidentity-nmi` header). */
const attemptsOf = (p: ComponentProcess): Attempt[] =>
  p.lines.flatMap((l) =>
    l.json ? [{ at: l.at, status: null, error: null, token: false, appid: null, ...(l.json as Partial<Attempt>), nmi: typeof l.json["nmi"] === "string" ? l.json["nmi"] : null }] : [],
  );

/** A refused connection: the guard's TCP reset (ECONNREFUSED at connect, ECONNRESET once connected). */
const REFUSALS = new Set(["ECONNREFUSED", "ECONNRESET"]);
/**
 * HTTP failures a client retries as IMDS's own (MSAL's IMDS policy and the Azure SDK: 408, 410, 429, 5xx). Never a
 * 400/403/404: for the bound pod those would mean an NMI that does not know it or its identity.
 */
const retryableStatus = (status: number): boolean => status === 408 || status === 410 || status === 429 || status >= 500;

/**
 * What one attempt of the BOUND pod was, or `unexpected: …` — the oracle's whole list of what is allowed: a token of
 * its own identity from v1.8's NMI (stand-in) or from ours, a refusal, or a retryable IMDS error.
 */
function boundOutcome(a: Attempt, clientId: string): string {
  if (a.status === 200 && a.token && a.appid === clientId) return a.nmi === null ? "token from v1.8" : "token from ours";
  if (a.status === null && a.error !== null && REFUSALS.has(a.error)) return "refused";
  if (a.status !== null && a.status !== 200 && retryableStatus(a.status)) return "retryable IMDS error";
  return `unexpected: ${JSON.stringify({ status: a.status, nmi: a.nmi !== null, error: a.error, token: a.token, ownIdentity: a.appid === clientId })}`;
}

/** The same for the UNBOUND pod: v1.8's 403, our 403 `podidentity_no_binding`, or a refusal — never a token. */
function unboundOutcome(a: Attempt): string {
  if (a.status === 403 && !a.token && a.nmi === null) return "403 from v1.8";
  if (a.status === 403 && !a.token && a.nmi !== null && a.error === "podidentity_no_binding") return "403 from ours";
  if (a.status === null && a.error !== null && REFUSALS.has(a.error)) return "refused";
  return `unexpected: ${JSON.stringify({ status: a.status, nmi: a.nmi !== null, error: a.error, token: a.token })}`;
}

describe.skipIf(!existsSync(HELM) && !ci)("migration from a Helm-installed aad-pod-identity v1.8, node by node, without a gap", () => {
  let cluster: E2eCluster;
  let node: TopologyNode;
  let id: ClusterIdentity;
  let bound: TopologyPod;
  let unbound: TopologyPod;
  let bridge: ProtobufSecretBridge | undefined;
  let helm: (...args: string[]) => Promise<{ code: number; stdout: string; stderr: string }>;

  beforeAll(async () => {
    if (!existsSync(HELM)) throw new Error(`helm not found at ${HELM}: run scripts/ensure-helm.sh or set HELM`);
    // A v1.8 node: no startup taint, route_localnet on (v1.8 DNATs to 127.0.0.1; kube-proxy sets it on AKS), no NMI of ours yet.
    cluster = await E2eCluster.start({ nodeCount: 1, startNmi: false, startupTaint: false, routeLocalnet: 1 });
    node = cluster.node(0);
    await cluster.ensureNamespace("shop");
    const azure = cluster.createIdentity("migration-id");
    bridge = await startProtobufSecretBridge(cluster.cloud.ca, cluster.kube.url);
    const kubeconfig = join(cluster.workDir, "helm.kubeconfig");
    await writeFile(kubeconfig, (await readFile(cluster.paths.adminKubeconfig, "utf8")).split(cluster.kube.url).join(bridge.url), { mode: 0o600 });
    const helmEnv = { ...process.env, KUBECONFIG: kubeconfig, HELM_CACHE_HOME: join(cluster.workDir, "helm-cache"), HELM_CONFIG_HOME: join(cluster.workDir, "helm-config"), HELM_DATA_HOME: join(cluster.workDir, "helm-data") };
    helm = async (...args: string[]) => {
      try {
        const r = await exec(HELM, args, { env: helmEnv, encoding: "utf8", timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
        return { code: 0, stdout: r.stdout, stderr: r.stderr };
      } catch (error) {
        const e = error as { code?: number; stdout?: string; stderr?: string };
        return { code: typeof e.code === "number" ? e.code : 1, stdout: e.stdout ?? "", stderr: e.stderr ?? String(error) };
      }
    };
    // The seed guide's command shape, with v1.8's chart and an identity + binding from `azureIdentities`. The CRDs
    // are already there (ours, created by the cluster, as after the guide's step 2): --skip-crds.
    const installed = await helm(
      "install", RELEASE, CHART, "--namespace", "kube-system", "--server-side=false", "--skip-crds",
      "--set", "operationMode=standard", "--set", "forceNamespaced=true",
      "--set", "azureIdentities.migration-id.namespace=shop", "--set", "azureIdentities.migration-id.type=0",
      "--set", `azureIdentities.migration-id.resourceID=${azure.id}`, "--set", `azureIdentities.migration-id.clientID=${azure.clientId}`,
      "--set", "azureIdentities.migration-id.binding.name=migration-id-binding", "--set", "azureIdentities.migration-id.binding.selector=migrated",
    );
    expect(installed.stdout, installed.stderr).toMatch(/STATUS: deployed/);
    id = { azure, name: "migration-id", namespace: "shop", selector: "migrated" };
    expect(await cluster.admin.get(V18_NMI_DAEMONSET)).toBeDefined();
    bound = await cluster.addPod("migrated-app", { namespace: "shop", labels: { aadpodidbinding: id.selector }, node: node.name });
    unbound = await cluster.addPod("migration-bystander", { namespace: "shop", node: node.name });
  });
  afterAll(async () => {
    await bridge?.close();
    await cluster?.close();
  });

  it("v1.8's NMI (stand-in) serves the node; ours waits for its ports with its guard in; v1.8 stops; ours takes over: no token for the unbound pod, IMDS only called by the NMIs, the bound pod's failures refused and counted", async () => {
    const imds = cluster.imds.get(node.name)!;
    const tokensBefore = imds.counters.tokensIssued;
    const standin = await startV18NmiStandin(cluster, node, { boundPodIp: bound.ip!, clientId: id.azure.clientId });
    const boundPoller = new ComponentProcess("bound-poller", cluster.spawnInPod(bound, process.execPath, ["-e", POLLER, tokenUrl()]));
    const unboundPoller = new ComponentProcess("unbound-poller", cluster.spawnInPod(unbound, process.execPath, ["-e", POLLER, tokenUrl("https://vault.azure.net", `&client_id=${id.azure.clientId}`)]));
    let ours: ComponentProcess | undefined;
    /** When v1.8's NMI (stand-in) was sent SIGTERM, and when it had exited. */
    const at = { sigterm: 0, standinExited: 0 };
    try {
      // v1.8 serves: once our MIC has assigned the identity to the scale set, the bound pod gets tokens from the stand-in.
      await boundPoller.waitForLine("a token from v1.8's NMI (stand-in)", (l) => l.json?.["token"] === true && l.json["nmi"] === null, 30_000);
      await unboundPoller.waitForLine("a 403 from v1.8's NMI (stand-in)", (l) => l.json?.["status"] === 403, 10_000);

      // Our NMI on the node (as its DaemonSet pod would start): it cannot listen on any of its ports, so it installs
      // its guard and waits; the probe and metrics waits do not stop it.
      const starting = cluster.startNmi(node.name);
      await pollFor(() => cluster.nmi.get(node.name), "our NMI process");
      ours = cluster.nmi.get(node.name)!;
      await ours.waitForLine("our NMI waiting for the port", (l) => l.json?.["msg"] === WAITING, 20_000);
      expect(ours.logs(OPS_WAITING("probe", 8085))).toHaveLength(1);
      expect(ours.logs(OPS_WAITING("metrics", 9090))).toHaveLength(1);
      const filter = (await cluster.runInNode(node, "iptables", ["-t", "filter", "-S"])).stdout;
      expect(filter).toContain("-A FORWARD -j aad-metadata");
      expect(filter).toContain('--comment "podidentity: metadata traffic not redirected to NMI is refused" -j REJECT --reject-with tcp-reset');
      // What a kubelet probing our pod's /readyz meets meanwhile: v1.8's probe server (no /readyz: 404, not ours).
      const probed = await cluster.runInNode(node, "curl", ["-s", "-o", "/dev/null", "-D", "-", "--max-time", "5", `http://${node.address}:8085/readyz`]);
      expect(probed.stdout).toMatch(/^HTTP\/1\.1 404 /);
      expect(probed.stdout.toLowerCase()).not.toContain("x-podidentity-nmi");
      // v1.8's redirect is untouched: the bound pod still gets tokens from the stand-in while ours waits.
      const waitingAt = performance.now();
      await boundPoller.waitForLine("a stand-in token while our NMI waits", (l) => l.at >= waitingAt && l.json?.["token"] === true && l.json["nmi"] === null, 10_000);
      expect((await cluster.runInNode(node, "iptables", ["-t", "nat", "-S", "aad-metadata"])).stdout).toContain("--to-destination 127.0.0.1:2579");

      // docs/install.md's order: keep the chart's identity and binding, drop them from the release, uninstall it.
      // The uninstall deletes v1.8's DaemonSet: its NMI gets SIGTERM, deletes its chain, exits and frees the ports.
      for (const path of USER_OBJECTS) await cluster.admin.patch(path, { metadata: { annotations: { "helm.sh/resource-policy": "keep" } } });
      const upgraded = await helm("upgrade", RELEASE, CHART, "--namespace", "kube-system", "--reset-then-reuse-values", "--set", "azureIdentities=null", "--server-side=false");
      expect(upgraded.code, upgraded.stderr).toBe(0);
      const uninstalled = await helm("uninstall", RELEASE, "--namespace", "kube-system");
      expect(uninstalled.code, uninstalled.stderr).toBe(0);
      await expect(cluster.admin.get(V18_NMI_DAEMONSET)).rejects.toMatchObject({ statusCode: 404 });
      at.sigterm = performance.now();
      expect(await standin.stop("SIGTERM")).toEqual({ code: 0, signal: null });
      at.standinExited = performance.now();
      expect(standin.logs("rules deleted")).toHaveLength(1);
      await starting; // our /readyz answers 200 on the probe port: ours has every port and its redirect
      const readyAt = performance.now();
      await boundPoller.waitForLine("a token from our NMI", (l) => l.at >= readyAt && l.json?.["token"] === true && l.json["nmi"] !== null, 20_000);
      await unboundPoller.waitForLine("a 403 from our NMI", (l) => l.at >= readyAt && l.json?.["status"] === 403 && l.json["nmi"] !== null, 20_000);
    } finally {
      await boundPoller.stop();
      await unboundPoller.stop();
      await standin.stop().catch(() => undefined);
    }

    // The unbound pod, at every moment: 0 tokens; every attempt one of the allowed outcomes.
    const other = attemptsOf(unboundPoller);
    expect(other.filter((a) => a.token || a.status === 200)).toEqual([]);
    expect(other.map(unboundOutcome).filter((o) => o.startsWith("unexpected"))).toEqual([]);
    expect(new Set(other.map(unboundOutcome))).toContain("403 from v1.8");
    expect(new Set(other.map(unboundOutcome))).toContain("403 from ours");

    // The bound pod, from its first token (before, IMDS answers 400 until our MIC has assigned the identity to the
    // scale set, which v1.8's NMI passes on): every attempt an allowed outcome — its own identity's token from
    // v1.8's NMI, then from ours, or a refusal or retryable error in between; their number is the handover's cost.
    const all = attemptsOf(boundPoller);
    const firstToken = all.findIndex((a) => a.token);
    expect(all.slice(0, firstToken).filter((a) => a.status !== 400 || a.nmi !== null)).toEqual([]);
    const mine = all.slice(firstToken);
    const outcomes = mine.map((a) => boundOutcome(a, id.azure.clientId));
    expect(outcomes.filter((o) => o.startsWith("unexpected"))).toEqual([]);
    // In order: v1.8's tokens, then failures only between v1.8's last token and our first, then our tokens.
    const lastV18 = outcomes.lastIndexOf("token from v1.8");
    const firstOurs = outcomes.indexOf("token from ours");
    expect(lastV18).toBeGreaterThanOrEqual(0);
    expect(firstOurs).toBeGreaterThan(lastV18);
    expect(outcomes.slice(0, lastV18 + 1).filter((o) => o !== "token from v1.8")).toEqual([]);
    expect(outcomes.slice(firstOurs).filter((o) => o !== "token from ours")).toEqual([]);
    const failed = mine.slice(lastV18 + 1, firstOurs);
    // The window is the handover: no failure reached the test before v1.8's NMI was told to stop.
    expect(failed.filter((a) => a.at < at.sigterm)).toEqual([]);
    const gapMs = Math.round(mine[firstOurs]!.at - mine[lastV18]!.at);
    const figures = {
      failed: failed.length,
      refused: failed.filter((a) => a.error === "ECONNREFUSED").length,
      reset: failed.filter((a) => a.error === "ECONNRESET").length,
      retryable: failed.filter((a) => a.status !== null).length,
      gapMs,
      // Where the gap goes: v1.8's NMI stopping (SIGTERM → exited), ours taking the port it freed (retried every
      // 250 ms), then installing its redirect (listening → NMI ready). Recorded, not asserted.
      sigtermToExitMs: Math.round(at.standinExited - at.sigterm),
      sigtermToListeningMs: Math.round(lineAt(ours!, TAKEOVER) - at.sigterm),
      listeningToReadyMs: Math.round(lineAt(ours!, "NMI ready") - lineAt(ours!, TAKEOVER)),
      boundAttempts: mine.length,
      unboundAttempts: other.length,
    };
    console.log(`migration handover: ${JSON.stringify(figures)}`);
    const measurements = process.env["PODIDENTITY_E2E_MEASUREMENTS"];
    if (measurements) await appendFile(measurements, `${JSON.stringify({ scenario: "migration handover", ...figures })}\n`);

    // The node's IMDS issued tokens only to the two NMIs: the stand-in's upstream 200s plus our NMI's IMDS calls.
    const standinCalls = standin.logs("request answered").filter((l) => l["upstream"] === 200).length;
    const ourCalls = await cluster.nmiCounter(node, "podidentity_nmi_upstream_calls_total", (s) => s.includes('target="imds"') && s.includes('outcome="ok"'));
    expect(imds.counters.tokensIssued - tokensBefore).toBe(standinCalls + ourCalls);

    // Ours now owns the redirect, to the node's address; one warning per port it waited for, then the takeover.
    expect((await cluster.runInNode(node, "iptables", ["-t", "nat", "-S", "aad-metadata"])).stdout).toContain(`--to-destination ${node.address}:2579`);
    expect(ours!.logs(WAITING)).toHaveLength(1);
    expect(ours!.logs(TAKEOVER)).toHaveLength(1);
    expect(ours!.logs("NMI's probe port is free: listening")).toHaveLength(1);
    expect(ours!.logs("NMI's metrics port is free: listening")).toHaveLength(1);
    // The user's AzureIdentity and binding outlived the release, and are what our NMI served the bound pod from.
    for (const path of USER_OBJECTS) expect(await cluster.admin.get(path)).toMatchObject({ metadata: { annotations: { "helm.sh/resource-policy": "keep" } } });
  });

  it("control: without the keep step, `helm uninstall` deletes the identity and binding the chart created", async () => {
    const installed = await helm(
      "install", CONTROL_RELEASE, CHART, "--namespace", "kube-system", "--server-side=false", "--skip-crds",
      "--set", "azureIdentities.control-id.namespace=shop", "--set", "azureIdentities.control-id.type=0",
      "--set", `azureIdentities.control-id.resourceID=${id.azure.id}`, "--set", `azureIdentities.control-id.clientID=${id.azure.clientId}`,
      "--set", "azureIdentities.control-id.binding.name=control-id-binding", "--set", "azureIdentities.control-id.binding.selector=control",
    );
    expect(installed.code, installed.stderr).toBe(0);
    const paths = [`${CRD_PATH}/azureidentities/control-id`, `${CRD_PATH}/azureidentitybindings/control-id-binding`];
    for (const path of paths) expect(await cluster.admin.get(path)).toBeDefined();
    const uninstalled = await helm("uninstall", CONTROL_RELEASE, "--namespace", "kube-system");
    expect(uninstalled.code, uninstalled.stderr).toBe(0);
    for (const path of paths) await expect(cluster.admin.get(path)).rejects.toMatchObject({ statusCode: 404 });
    for (const path of USER_OBJECTS) expect(await cluster.admin.get(path)).toBeDefined();
  });
});

/** When the test received `component`'s first log line with this `msg`. */
function lineAt(component: ComponentProcess, msg: string): number {
  const line = component.lines.find((l) => l.json?.["msg"] === msg);
  if (line === undefined) throw new Error(`${component.name} never logged "${msg}"`);
  return line.at;
}

async function pollFor<T>(get: () => T | undefined, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
