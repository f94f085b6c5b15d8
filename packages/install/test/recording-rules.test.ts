import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments, stringify } from "yaml";
import { API_GROUP_VERSION, customResourceDefinitions } from "@podidentity/api";
import { KubeClient, Nmi } from "@podidentity/nmi";
import { AzureCloud, KubeApiServer, renderKubeconfig, type ComputeResource, type KubeObject, type UserAssignedIdentity } from "@podidentity/testbed";
import { runCli } from "../src/cli";
import { AADPODIDENTITY_RECORDING_RULES_YAML, type PrometheusRule } from "../src/index";
import { MIC_MAIN, freePort, startMicProcess, until, type MicProcess } from "./helpers/mic-process";
import { parseExposition, seriesKey, type Sample } from "./helpers/prometheus-text";
import { SHARED_LE, V18_LABELS, expectedV18Series, type Expected } from "./helpers/v18-metrics-oracle";

/**
 * The recording rules that give v1.8 dashboards their `aadpodidentity_*` series
 * (charts/podidentity/files/aadpodidentity-rules.yaml), checked by Prometheus' own promtool: the file is valid, and
 * evaluated over two real scrapes of NMI and MIC (running against the testbed, with tokens served and identities
 * assigned between them) it records exactly the series and values v1.8 would show, computed independently
 * (helpers/v18-metrics-oracle.ts). Under CI a missing promtool fails (scripts/ensure-promtool.sh provides one);
 * locally the suite is skipped.
 */

const ROOT = resolve(import.meta.dirname, "../../..");
const RULES = resolve(ROOT, "charts/podidentity/files/aadpodidentity-rules.yaml");
const ci = process.env["CI"] === "true";
const exec = promisify(execFile);

/** $PROMTOOL, or the newest one scripts/ensure-promtool.sh unpacked. */
function findPromtool(): string | undefined {
  const fromEnv = process.env["PROMTOOL"];
  if (fromEnv !== undefined && existsSync(fromEnv)) return fromEnv;
  const cache = process.env["PODIDENTITY_CACHE_DIR"] ?? "/var/cache/podidentity";
  if (!existsSync(cache)) return undefined;
  const dirs = readdirSync(cache).filter((d) => d.startsWith("promtool-")).sort();
  const found = dirs.map((d) => join(cache, d, "promtool")).filter((p) => existsSync(p));
  return found.at(-1);
}
const PROMTOOL = findPromtool();

async function promtool(args: string[], cwd: string): Promise<{ code: number; output: string }> {
  try {
    const r = await exec(PROMTOOL!, args, { cwd, encoding: "utf8", timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, output: r.stdout + r.stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : 1, output: (e.stdout ?? "") + (e.stderr ?? String(error)) };
  }
}

const NODE = "aks-agentpool-0";
const KV = "https://vault.azure.net";
const POD_IP = "127.0.33.1";

/** GET through NMI from a pod's address (any 127.x address reaches loopback), or from the node's own. */
function fromPod(url: string, path: string, headers: Record<string, string> = { metadata: "true" }, localAddress = POD_IP): Promise<number> {
  return new Promise((ok, fail) => {
    const req = request(`${url}${path}`, { localAddress, headers, timeout: 20_000 }, (res) => {
      res.resume();
      res.on("end", () => ok(res.statusCode ?? 0));
    });
    req.on("timeout", () => req.destroy(new Error(`no answer from NMI for ${path}`)));
    req.on("error", fail);
    req.end();
  });
}

async function scrape(url: string, labels: Record<string, string>): Promise<Sample[]> {
  const res = await fetch(`${url.replace(/\/$/, "")}/metrics`, { signal: AbortSignal.timeout(10_000) });
  expect(res.status).toBe(200);
  // Only podidentity's own series (not the Node.js process metrics), as a Prometheus target would label them.
  return parseExposition(await res.text())
    .filter((s) => /^podidentity_(nmi|mic)_/.test(s.name) && !/^podidentity_(nmi|mic)_(process|nodejs)_/.test(s.name))
    .map((s) => ({ ...s, labels: { ...s.labels, ...labels } }));
}

/** A `promtool test rules` document: the two scrapes as input series 1m apart, each recorded series at both times. */
function ruleTest(rules: string, t0: Sample[], t1: Sample[]): string {
  const series = new Map<string, [number | undefined, number | undefined]>();
  for (const [i, scrape] of [t0, t1].entries()) {
    for (const s of scrape) {
      const key = seriesKey(s.name, s.labels);
      const v = series.get(key) ?? [undefined, undefined];
      v[i] = s.value;
      series.set(key, v);
    }
  }
  const value = (v: number | undefined): string => (v === undefined ? "_" : Number.isFinite(v) ? String(v) : v > 0 ? "+Inf" : "-Inf");
  const expectations = (samples: Sample[], evalTime: string) =>
    [...expectedV18Series(samples)].map(([name, expected]) => ({
      expr: name,
      eval_time: evalTime,
      exp_samples: expected.map((e: Expected) => ({ labels: seriesKey(name, e.labels), value: e.value })),
    }));
  return stringify(
    {
    rule_files: [rules],
    evaluation_interval: "1m",
    tests: [
      {
        interval: "1m",
        input_series: [...series].map(([key, [a, b]]) => ({ series: key, values: `${value(a)} ${value(b)}` })),
        promql_expr_test: [...expectations(t0, "0m"), ...expectations(t1, "1m")],
      },
    ],
    },
    { lineWidth: 0 },
  );
}

function render(argv: string[]): { code: number; stdout: string; stderr: string } {
  let stdout = "";
  let stderr = "";
  const code = runCli(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), readFile: () => "" });
  return { code, stdout, stderr };
}

describe("render --prometheus-recording-rules", () => {
  it("adds a PrometheusRule whose groups are the shipped rules file, and nothing by default", async () => {
    const rules = parse(await readFile(RULES, "utf8")) as { groups: unknown[] };
    expect(parse(AADPODIDENTITY_RECORDING_RULES_YAML)).toEqual(rules);
    const on = render(["render", "--namespace", "monitoring-test", "--prometheus-recording-rules"]);
    expect(on.code, on.stderr).toBe(0);
    const objects = parseAllDocuments(on.stdout).map((d) => d.toJS() as { kind: string } | null);
    const rule = objects.filter((o): o is PrometheusRule => o?.kind === "PrometheusRule");
    expect(rule).toHaveLength(1);
    expect(rule[0]!.apiVersion).toBe("monitoring.coreos.com/v1");
    expect(rule[0]!.metadata.namespace).toBe("monitoring-test");
    expect(rule[0]!.spec).toEqual(rules);
    const off = render(["render"]);
    expect(off.code, off.stderr).toBe(0);
    expect(off.stdout).not.toContain("PrometheusRule");
  });

  it("refuses a PrometheusRule label that is no Kubernetes label, naming the value", () => {
    let stderr = "";
    const code = runCli(["render", "--values", "values.yaml"], {
      stdout: () => undefined,
      stderr: (t) => (stderr += t),
      readFile: () => "prometheus:\n  recordingRules:\n    enabled: true\n    labels: { 'bad key!': x }\n",
    });
    expect(code).toBe(1);
    expect(stderr).toContain("prometheus.recordingRules.labels must be Kubernetes labels");
  });
});

describe.skipIf(PROMTOOL === undefined && !ci)("Prometheus recording rules for v1.8's aadpodidentity_* series", () => {
  let dir: string;
  beforeAll(async () => {
    if (PROMTOOL === undefined) throw new Error("promtool not found: run scripts/ensure-promtool.sh or set PROMTOOL");
    dir = await mkdtemp(join(tmpdir(), "podidentity-rules-"));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("promtool check rules accepts the file; every rule records a v1.8 name with only v1.8's labels", async () => {
    const r = await promtool(["check", "rules", RULES], dir);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain(`SUCCESS: ${Object.keys(V18_LABELS).length} rules found`);
    const doc = parse(await readFile(RULES, "utf8")) as { groups: { rules: { record: string; expr: string }[] }[] };
    const records = doc.groups.flatMap((g) => g.rules.map((r) => r.record));
    expect(records.sort()).toEqual(Object.keys(V18_LABELS).sort());
    // Labels a rule adds: only v1.8's.
    for (const g of doc.groups) {
      for (const rule of g.rules) {
        // label_replace(v, "dst", "replacement", "src", "regex"): the dst of each.
        const added = [...rule.expr.matchAll(/,\s*"([a-z_]+)",\s*"[^"]*",\s*"[a-z_]+",\s*"[^"]*"\)/g)].map((m) => m[1]!);
        expect(added.length, rule.record).toBe((rule.expr.match(/label_replace\(/g) ?? []).length);
        for (const label of added) expect(V18_LABELS[rule.record], `${rule.record} adds ${label}`).toContain(label);
      }
    }
  });

  it("a wrong rule file fails: an invalid expression in check rules, a wrong label mapping in test rules", async () => {
    const good = await readFile(RULES, "utf8");
    const invalid = join(dir, "invalid.yaml");
    await writeFile(invalid, good.replace("sum without (target, outcome) (", "sum without (target, outcome) ((("));
    const checked = await promtool(["check", "rules", invalid], dir);
    expect(checked.code).not.toBe(0);
    expect(checked.output).toMatch(/parse error/);

    // host-token answers recorded under the token path: the exact-value test must catch it.
    const swapped = join(dir, "swapped.yaml");
    await writeFile(swapped, good.replaceAll('"/host/token/", "route", "host-token"', '"/metadata/identity/oauth2/token", "route", "host-token"'));
    expect((await promtool(["check", "rules", swapped], dir)).code).toBe(0);
    const sample = (name: string, labels: Record<string, string>, value: number): Sample => ({ name, labels: { job: "nmi", instance: "nmi:9090", ...labels }, value });
    const scrapeAt = (n: number): Sample[] => [
      sample("podidentity_nmi_request_duration_seconds_count", { route: "token", status: "200" }, 3 * n),
      sample("podidentity_nmi_request_duration_seconds_count", { route: "host-token", status: "200" }, n),
    ];
    const file = join(dir, "swapped-test.yaml");
    await writeFile(file, ruleTest(swapped, scrapeAt(1), scrapeAt(2)));
    const failed = await promtool(["test", "rules", file], dir);
    expect(failed.code, failed.output).not.toBe(0);
    expect(failed.output).toMatch(/aadpodidentity_nmi_operations_duration_seconds_count/);
    // The same input passes with the shipped rules, so it is the mapping the test caught.
    await writeFile(file, ruleTest(RULES, scrapeAt(1), scrapeAt(2)));
    const passed = await promtool(["test", "rules", file], dir);
    expect(passed.code, passed.output).toBe(0);
  });

  describe.skipIf(!existsSync(MIC_MAIN) && !ci)("against real NMI and MIC on the testbed", () => {
    let cloud: AzureCloud;
    let kube: KubeApiServer;
    let kubeClient: KubeClient;
    let vm: ComputeResource;
    let web: UserAssignedIdentity;
    let nmi: Nmi;
    let mic: MicProcess;
    let micMetricsUrl: string;

    beforeAll(async () => {
      if (!existsSync(MIC_MAIN)) throw new Error(`${MIC_MAIN} does not exist: build @podidentity/mic first`);
      cloud = await AzureCloud.create();
      const arm = await cloud.startArm({ operationDurationMs: 200, propagationDelayMs: 0, pollRetryAfterSeconds: 1 });
      const entra = await cloud.startEntra();
      kube = new KubeApiServer({ tls: cloud.ca });
      await kube.start();
      for (const crd of customResourceDefinitions()) kube.seed(crd as unknown as KubeObject);
      vm = cloud.addVirtualMachine(NODE);
      const imds = await cloud.startImds(NODE, vm);
      for (const ns of ["kube-system", "shop"]) {
        if (kube.getObject("namespaces", undefined, ns) === undefined) kube.seed({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
      }
      kube.seed({ apiVersion: "v1", kind: "Node", metadata: { name: NODE }, spec: { providerID: `azure://${vm.id}` } });
      web = cloud.createUserAssignedIdentity("web-identity");
      kube.seed({ apiVersion: API_GROUP_VERSION, kind: "AzureIdentity", metadata: { name: "web", namespace: "shop" }, spec: { type: 0, resourceID: web.id, clientID: web.clientId } } as KubeObject);
      kube.seed({ apiVersion: API_GROUP_VERSION, kind: "AzureIdentityBinding", metadata: { name: "web", namespace: "shop" }, spec: { azureIdentity: "web", selector: "web" } } as KubeObject);
      kube.seed({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "web-0", namespace: "shop", labels: { aadpodidbinding: "web" } },
        spec: { nodeName: NODE, containers: [{ name: "app", image: "app:1" }] },
        status: { phase: "Running", podIP: POD_IP, podIPs: [{ ip: POD_IP }] },
      } as KubeObject);

      // MIC: the rendered Deployment's command line, as a process.
      const app = cloud.addServicePrincipal({ secrets: ["mic-secret"] });
      await kube.writeKubeconfig(join(dir, "mic.kubeconfig"));
      await writeFile(join(dir, "ca.pem"), cloud.ca.certPem);
      await writeFile(
        join(dir, "azure.json"),
        JSON.stringify({ cloud: "AzurePublicCloud", tenantId: cloud.tenantId, aadClientId: app.appId, aadClientSecret: "mic-secret", subscriptionId: cloud.subscriptionId, resourceGroup: cloud.resourceGroup, vmType: "standard" }),
      );
      const metricsPort = await freePort();
      micMetricsUrl = `http://127.0.0.1:${metricsPort}`;
      mic = await startMicProcess({
        namespace: "kube-system",
        podName: "podidentity-mic-0",
        overrides: {
          "--cloudconfig": join(dir, "azure.json"),
          "--kubeconfig": join(dir, "mic.kubeconfig"),
          "--arm-endpoint": arm.url,
          "--authority-host": entra.url,
          "--prometheus-port": String(metricsPort),
        },
        env: { NODE_EXTRA_CA_CERTS: join(dir, "ca.pem") },
      });

      // NMI in-process on loopback (no iptables: the request's source address is the pod's).
      kubeClient = KubeClient.fromKubeconfig(renderKubeconfig({ server: kube.url, caPem: cloud.ca.certPem }));
      nmi = new Nmi({
        kube: kubeClient,
        nodeName: NODE,
        port: 0,
        httpProbePort: 0,
        prometheusPort: 0,
        upstreamImds: imds.url,
        interception: null,
        checkNetworkPlugin: false,
        nodeAddresses: ["127.0.0.1", "::1"],
        collectDefaultMetrics: false,
      });
      await nmi.start();
    }, 90_000);

    afterAll(async () => {
      await nmi?.stop().catch(() => undefined);
      await kubeClient?.close();
      await mic?.stop();
      await cloud?.close();
      await kube?.close();
    });

    const assigned = (pod: string, identity: string): KubeObject | undefined => {
      if (mic.child.exitCode !== null) throw new Error(`MIC exited ${mic.child.exitCode}: ${mic.output()}`);
      const o = kube.getObject("azureassignedidentities.aadpodidentity.k8s.io", "shop", `${pod}-shop-${identity}`) as { status?: { status?: string } } | undefined;
      return o?.status?.status === "Assigned" ? (o as KubeObject) : undefined;
    };

    it("records exactly v1.8's series from two scrapes of NMI and MIC with tokens served and identities assigned between them", { timeout: 120_000 }, async () => {
      const token = (resource: string): Promise<number> => fromPod(nmi.url, `/metadata/identity/oauth2/token?api-version=2018-02-01&resource=${encodeURIComponent(resource)}`);
      await until(() => assigned("web-0", "web"), "web-0's identity Assigned by MIC", 60_000);
      expect(await token(KV)).toBe(200);
      expect(await token(KV)).toBe(200);
      // No such resource: IMDS answers 400, an IMDS error in v1.8's terms.
      expect(await token("https://no-such-resource.example")).toBe(400);
      const nmiLabels = { job: "podidentity-nmi", instance: `${NODE}:9090` };
      const micLabels = { job: "podidentity-mic", instance: "podidentity-mic-0:8888" };
      const t0 = [...(await scrape(nmi.metricsUrl, nmiLabels)), ...(await scrape(micMetricsUrl, micLabels))];

      // More traffic: another resource, the host-token route, and an assignment ARM refuses (no such identity).
      expect(await token("https://management.azure.com/")).toBe(200);
      // The host-token route, as a hostNetwork client on the node calls it.
      expect(await fromPod(nmi.url, `/host/token/?resource=${encodeURIComponent(KV)}`, { podname: "web-0", podns: "shop" }, "127.0.0.1")).toBe(200);
      const missing = `/subscriptions/${cloud.subscriptionId}/resourcegroups/${cloud.resourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/deleted`;
      kube.seed({ apiVersion: API_GROUP_VERSION, kind: "AzureIdentity", metadata: { name: "gone", namespace: "shop" }, spec: { type: 0, resourceID: missing, clientID: "00000000-0000-0000-0000-0000000000aa" } } as KubeObject);
      kube.seed({ apiVersion: API_GROUP_VERSION, kind: "AzureIdentityBinding", metadata: { name: "gone", namespace: "shop" }, spec: { azureIdentity: "gone", selector: "gone" } } as KubeObject);
      kube.seed({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "batch-0", namespace: "shop", labels: { aadpodidbinding: "gone" } },
        spec: { nodeName: NODE, containers: [{ name: "app", image: "app:1" }] },
        status: { phase: "Running", podIP: "127.0.33.2", podIPs: [{ ip: "127.0.33.2" }] },
      } as KubeObject);
      const armFailures = async (): Promise<true | undefined> => {
        const s = (await scrape(micMetricsUrl, micLabels)).filter((x) => x.name === "podidentity_mic_arm_requests_total" && Number(x.labels["status"]) >= 400);
        return s.length > 0 ? true : undefined;
      };
      await until(armFailures, "MIC's refused identity PATCH", 60_000);
      const t1 = [...(await scrape(nmi.metricsUrl, nmiLabels)), ...(await scrape(micMetricsUrl, micLabels))];

      // The oracle has something to say for each family the traffic touched (not vacuous).
      const at1 = expectedV18Series(t1);
      for (const name of [
        "aadpodidentity_nmi_operations_duration_seconds_count",
        "aadpodidentity_imds_operations_errors_count",
        "aadpodidentity_imds_operations_duration_seconds_bucket",
        "aadpodidentity_mic_new_leader_election_count",
        "aadpodidentity_cloud_provider_operations_errors_count",
        "aadpodidentity_cloud_provider_operations_duration_seconds_count",
      ]) {
        expect(at1.get(name)?.length, name).toBeGreaterThan(0);
      }
      const ops = at1.get("aadpodidentity_nmi_operations_duration_seconds_count")!.map((e) => `${e.labels["operation_type"]} ${e.labels["status_code"]}`);
      expect(ops).toEqual(expect.arrayContaining(["/metadata/identity/oauth2/token 200", "/metadata/identity/oauth2/token 400"]));
      expect(ops.some((o) => o.startsWith("/host/token/ "))).toBe(true);
      expect(at1.get("aadpodidentity_cloud_provider_operations_errors_count")!.map((e) => e.labels["operation_type"])).toEqual(["vm_update"]);
      const buckets = new Set(at1.get("aadpodidentity_imds_operations_duration_seconds_bucket")!.map((e) => e.labels["le"]));
      expect([...buckets].sort()).toEqual([...SHARED_LE.imdsOperations].sort());

      // promtool proves the rules record exactly these series; none has a label v1.8 did not have.
      for (const [name, series] of at1) {
        for (const e of series) {
          for (const label of Object.keys(e.labels)) expect([...V18_LABELS[name]!, "job", "instance"], `${name} ${label}`).toContain(label);
        }
      }
      const file = join(dir, "live-test.yaml");
      await writeFile(file, ruleTest(RULES, t0, t1));
      const r = await promtool(["test", "rules", file], dir);
      expect(r.code, r.output).toBe(0);
      expect(r.output).toContain("SUCCESS");
    });
  });
});
