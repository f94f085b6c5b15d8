import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import { renderCrdsYaml } from "@podidentity/api";
import { KubeApiServer, TestbedCa } from "@podidentity/testbed";
import { runCli } from "../src/cli";
import { parseInstallValues } from "../src/index";
import { ADMIN } from "./helpers/cluster";
import { startProtobufSecretBridge, type ProtobufSecretBridge } from "./helpers/protobuf-secret-bridge";

/**
 * One source of truth: podidentity's Helm chart (charts/podidentity) and `podidentity-install render --values` give
 * the same objects for the same values file, over a matrix of settings. The only differences allowed: Helm's
 * `app.kubernetes.io/managed-by: Helm` label, and the Namespace object render adds for a new namespace (Helm's
 * --create-namespace makes it).
 */

const ROOT = resolve(import.meta.dirname, "../../..");
const CHART = resolve(ROOT, "charts/podidentity");
// Where scripts/ensure-helm.sh puts it (keep the version in step with that script).
const HELM = process.env["HELM"] ?? join(process.env["PODIDENTITY_CACHE_DIR"] ?? "/var/cache/podidentity", "helm/2.2.2/helm");
const haveHelm = existsSync(HELM);
const ci = process.env["CI"] === "true";
const exec = promisify(execFile);
const CID = "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
const RID = "/subscriptions/0000/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id";

const MATRIX: Record<string, string> = {
  defaults: "",
  "seed guide: managed + forceNamespaced": "operationMode: managed\nforceNamespaced: true\n",
  "v1.8-style standard, cross-namespace, secrets, kubenet": `forceNamespaced: "false"\nrbac:\n  allowAccessToSecrets: "true"\nnmi:\n  allowNetworkPluginKubenet: true\n  kubeletConfig: /etc/kubernetes/kubelet-flags\n`,
  "least privilege: no startup taint": "nmi:\n  startupTaint: false\n",
  "Prometheus recording rules (PrometheusRule) with the Operator's selector label": "prometheus:\n  recordingRules:\n    enabled: true\n    labels: { release: kube-prometheus-stack }\n",
  "scheduling and pods": `image:\n  repository: myregistry.azurecr.io/pi\n  imagePullPolicy: Always\nimagePullSecrets:\n  - name: regcred\nmic:
  replicas: 3\n  priorityClassName: mic-critical\n  logVerbosity: 4\n  tag: 0.1.0-rc1\n  nodeSelector: { agentpool: system }\n  tolerations: [{ key: CriticalAddonsOnly, operator: Exists }]
  affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: agentpool, operator: In, values: [system] }] }] } } }
  topologySpreadConstraints: [{ maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule }]
  podDisruptionBudget: { maxUnavailable: 1 }\n  podAnnotations: { team: identity }\n  podLabels: { cost-center: "42" }\n  probePort: 8081\n  prometheusPort: 8889
  immutableUserMSIs: ["${CID}"]\n  leaderElection: { name: my-lease, duration: 30s }\n  identityAssignmentReconcileInterval: 5m
nmi:\n  priorityClassName: nmi-critical\n  logVerbosity: 2\n  resources: { limits: { cpu: 250m, memory: 600Mi } }\n  tolerations: [{ key: dedicated, operator: Equal, value: apps, effect: NoSchedule }]
  updateStrategy: { type: RollingUpdate, rollingUpdate: { maxUnavailable: 3 } }\n  probePort: 8086\n  prometheusPort: 9091\n  blockInstanceMetadata: true\n  metadataHeaderRequired: false
  ipTableUpdateTimeIntervalInSeconds: 30\n  enableConntrackDeletion: true\ninstallMICException: "false"\nrbac:\n  createUserFacingClusterRoles: true\n`,
  "identities (JSON-string clientPassword)": `rbac:\n  allowAccessToSecrets: true\nazureIdentities:\n  kv:\n    namespace: shop\n    type: 0\n    resourceID: ${RID}\n    clientID: ${CID}\n    binding: { name: kv-binding, selector: kv }
  sp:\n    type: 1\n    clientID: ${CID}\n    tenantID: 72f988bf-86f1-41af-91ab-2d7cd011db47\n    clientPassword: '{"name":"sp-secret","namespace":"kube-system"}'\n    binding: { selector: sp }\n`,
};

/** A value per key render reports (packages/install/src/chart-values.ts), and an unknown key. */
const REPORTED: Record<string, unknown> = {
  nameOverride: "pi",
  fullnameOverride: "pi-full",
  "image.repository": "mcr.microsoft.com/oss/azure/aad-pod-identity",
  "mic.image": "mic",
  "mic.tag": "v1.8.17",
  "nmi.image": "nmi",
  "nmi.tag": "v1.8.17",
  adminsecret: { clientSecret: "never-printed" },
  customUserAgent: "migration",
  "rbac.enabled": false,
  "rbac.pspEnabled": true,
  "mic.loggingFormat": "text",
  "mic.leaderElection.instance": "mic-a",
  "mic.leaderElection.namespace": "other",
  "mic.syncRetryDuration": "1h",
  "mic.createDeleteBatch": "10",
  "mic.clientQps": "10",
  "mic.cloudConfig": "/etc/kubernetes/azure.json",
  "mic.customCloud.enabled": true,
  "mic.updateUserMSIMaxRetry": "3",
  "mic.updateUserMSIRetryInterval": "2s",
  "nmi.micNamespace": "kube-system",
  "nmi.retryAttemptsForCreated": "20",
  "nmi.retryAttemptsForAssigned": "5",
  "nmi.findIdentityRetryIntervalInSeconds": "3",
  "nmi.enableScaleFeatures": false,
  "nmi.allowNetworkPluginKubnet": true,
};

interface Obj {
  kind: string;
  metadata: { name: string; namespace?: string };
}

/** Objects keyed kind/namespace/name, with managed-by labels made equal (Helm vs podidentity-install). */
function normalise(yaml: string): Map<string, unknown> {
  const text = yaml.replace(/(app\.kubernetes\.io\/managed-by): (Helm|podidentity-install)/g, "$1: <installer>");
  const out = new Map<string, unknown>();
  for (const doc of parseAllDocuments(text)) {
    const o = doc.toJS() as Obj | null;
    if (o === null || o.kind === "Namespace") continue;
    out.set(`${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`, o);
  }
  return out;
}

async function helm(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(HELM, args, { env: { ...process.env, ...env }, encoding: "utf8", timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : 1, stdout: e.stdout ?? "", stderr: e.stderr ?? String(error) };
  }
}

function render(valuesPath: string, namespace: string): { code: number; stdout: string; stderr: string } {
  let stdout = "";
  let stderr = "";
  const code = runCli(["render", "--namespace", namespace, "--values", valuesPath], {
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
    readFile: (p) => readFileSync(p, "utf8"),
  });
  return { code, stdout, stderr };
}

// Under CI a missing helm is a failure (scripts/ensure-helm.sh provides one); locally the suite is skipped.
// A hang guard, not a speed bound: a test runs helm up to five times (each bounded at 60 s), and with the other
// suites sharing 2 cores one install/upgrade/uninstall took over 20 s in CI.
describe.skipIf(!haveHelm && !ci)("charts/podidentity: a real helm 4", { timeout: 180_000 }, () => {
  let dir: string;
  let helmEnv: Record<string, string>;
  beforeAll(async () => {
    if (!haveHelm) throw new Error(`helm not found at ${HELM}: run scripts/ensure-helm.sh or set HELM`);
    dir = await mkdtemp(join(tmpdir(), "podidentity-helm-"));
    helmEnv = { HELM_CACHE_HOME: join(dir, "cache"), HELM_CONFIG_HOME: join(dir, "config"), HELM_DATA_HOME: join(dir, "data") };
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("helm lint passes, in both modes", async () => {
    for (const mode of ["standard", "managed"]) {
      const r = await helm(["lint", CHART, "--strict", "--set", `operationMode=${mode}`, "--set", "forceNamespaced=true"], helmEnv);
      expect(r.code, r.stdout + r.stderr).toBe(0);
    }
  });

  it("the chart's CRDs are render --crds (deploy/crds/crds.yaml)", async () => {
    expect(await readFile(join(CHART, "crds/crds.yaml"), "utf8")).toBe(renderCrdsYaml());
  });

  for (const [name, values] of Object.entries(MATRIX)) {
    for (const namespace of name === "defaults" ? ["kube-system", "podidentity"] : ["kube-system"]) {
      it(`helm template = render --values: ${name} (namespace ${namespace})`, async () => {
        const file = join(dir, `${name.replace(/\W+/g, "-")}.yaml`);
        await writeFile(file, values);
        const rendered = render(file, namespace);
        expect(rendered.code, rendered.stderr).toBe(0);
        const templated = await helm(["template", "podidentity", CHART, "--namespace", namespace, "-f", file], helmEnv);
        expect(templated.code, templated.stderr).toBe(0);
        const fromRender = normalise(rendered.stdout);
        const fromHelm = normalise(templated.stdout);
        expect([...fromHelm.keys()].sort()).toEqual([...fromRender.keys()].sort());
        for (const [key, object] of fromRender) expect(fromHelm.get(key), key).toEqual(object);
      });
    }
  }

  it("v1.8's default values.yaml fails the install, naming a key podidentity does not honour", async () => {
    const v18 = resolve(import.meta.dirname, "fixtures/v1.8-chart-values.yaml");
    const r = await helm(["template", "aad-pod-identity", CHART, "--namespace", "kube-system", "-f", v18], helmEnv);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/(image\.repository|mic\.cloudConfig|mic\.image|mic\.tag|nmi\.image|nmi\.tag): /);
  });

  // One value each that render reports; the chart must refuse each, naming the same key.
  for (const [key, value] of Object.entries(REPORTED)) {
    it(`render and the chart refuse the same value: ${key}`, async () => {
      const doc: Record<string, unknown> = {};
      const parts = key.split(".");
      let at = doc;
      for (const p of parts.slice(0, -1)) at = (at[p] ??= {}) as Record<string, unknown>;
      at[parts.at(-1)!] = value;
      const text = stringify(doc);
      const reported = parseInstallValues(text).unmapped.map((u) => u.key);
      expect(reported).toEqual([key]);
      const file = join(dir, `reported-${key}.yaml`);
      await writeFile(file, text);
      const r = await helm(["template", "podidentity", CHART, "-f", file], helmEnv);
      expect(r.code, r.stdout).not.toBe(0);
      expect(r.stderr).toContain(key.includes("Kubnet") ? "additional properties 'allowNetworkPluginKubnet' not allowed" : `${key}: `);
    });
  }

  /** The testbed's Kubernetes API (TLS, token auth) behind the protobuf-Secret bridge, and a kubeconfig for helm. */
  async function startCluster(): Promise<{ server: KubeApiServer; bridge: ProtobufSecretBridge; env: Record<string, string>; close: () => Promise<void> }> {
    const ca = await TestbedCa.create();
    const server = new KubeApiServer({ tls: ca, tokens: { "admin-token": ADMIN } });
    await server.start();
    const bridge = await startProtobufSecretBridge(ca, server.url);
    const kubeconfig = join(dir, `kubeconfig-${server.port}`);
    await server.writeKubeconfig(kubeconfig, { user: ADMIN });
    await writeFile(kubeconfig, (await readFile(kubeconfig, "utf8")).split(server.url).join(bridge.url));
    return {
      server,
      bridge,
      env: { ...helmEnv, KUBECONFIG: kubeconfig },
      close: async () => {
        await bridge.close();
        await server.close();
      },
    };
  }

  const objectsIn = (server: KubeApiServer, resource: string, namespace: string | undefined, name: string): unknown => {
    try {
      return server.getObject(resource, namespace, name);
    } catch {
      return undefined;
    }
  };

  type Managed = { metadata: { managedFields?: { manager: string; operation: string }[] }; spec: { replicas: number } };
  const managers = (o: unknown) => (o as Managed | undefined)?.metadata.managedFields?.map((e) => `${e.manager}/${e.operation}`);

  it("helm install / upgrade / uninstall against the testbed's API server (helm 4's default, server-side apply): every object applied, changed, then removed", async () => {
    const c = await startCluster();
    try {
      const install = await helm(["install", "podidentity", CHART, "--namespace", "kube-system"], c.env);
      expect(install.code, install.stderr).toBe(0);
      expect(install.stdout).toMatch(/STATUS: deployed/);
      // Every object went through server-side apply: PATCH application/apply-patch+yaml with helm as the manager.
      const applies = c.server.requests.filter((r) => r.verb === "patch" && /(^|&)fieldManager=helm(&|$)/.test(r.query));
      expect(applies.length).toBeGreaterThan(0);
      expect(c.server.requests.filter((r) => r.verb === "create" && (r.resource === "deployments" || r.resource === "daemonsets")).length).toBe(0);
      expect(managers(objectsIn(c.server, "deployments.apps", "kube-system", "podidentity-mic"))).toEqual(["helm/Apply"]);
      expect(managers(objectsIn(c.server, "daemonsets.apps", "kube-system", "podidentity-nmi"))).toEqual(["helm/Apply"]);
      // Helm's release record went through the bridge; every object of the rendering exists in the API server.
      expect(c.bridge.converted()).toBeGreaterThan(0);
      const values = join(dir, "empty.yaml");
      await writeFile(values, "");
      const expected = normalise(render(values, "kube-system").stdout);
      for (const key of expected.keys()) {
        const [kind, namespace, name] = key.split("/") as [string, string, string];
        const resource = { ServiceAccount: "serviceaccounts", ClusterRole: "clusterroles.rbac.authorization.k8s.io", ClusterRoleBinding: "clusterrolebindings.rbac.authorization.k8s.io", Role: "roles.rbac.authorization.k8s.io", RoleBinding: "rolebindings.rbac.authorization.k8s.io", Deployment: "deployments.apps", PodDisruptionBudget: "poddisruptionbudgets.policy", DaemonSet: "daemonsets.apps", AzurePodIdentityException: "azurepodidentityexceptions.aadpodidentity.k8s.io" }[kind];
        expect(resource, kind).toBeDefined();
        expect(objectsIn(c.server, resource!, namespace === "" ? undefined : namespace, name), key).toBeDefined();
      }
      expect(objectsIn(c.server, "customresourcedefinitions.apiextensions.k8s.io", undefined, "azureidentities.aadpodidentity.k8s.io")).toBeDefined();

      const upgrade = await helm(["upgrade", "podidentity", CHART, "--namespace", "kube-system", "--set", "nmi.startupTaint=false", "--set", "mic.replicas=3"], c.env);
      expect(upgrade.code, upgrade.stderr).toBe(0);
      expect(upgrade.stdout).toMatch(/REVISION: 2/);
      const role = objectsIn(c.server, "clusterroles.rbac.authorization.k8s.io", undefined, "podidentity-nmi") as { rules: { resources: string[]; verbs: string[] }[] };
      expect(role.rules.find((r) => r.resources.includes("nodes"))?.verbs).toEqual(["get", "list", "watch"]);
      expect((objectsIn(c.server, "deployments.apps", "kube-system", "podidentity-mic") as { spec: { replicas: number } }).spec.replicas).toBe(3);
      expect(managers(objectsIn(c.server, "deployments.apps", "kube-system", "podidentity-mic"))).toEqual(["helm/Apply"]);

      const uninstall = await helm(["uninstall", "podidentity", "--namespace", "kube-system"], c.env);
      expect(uninstall.code, uninstall.stderr).toBe(0);
      expect(objectsIn(c.server, "daemonsets.apps", "kube-system", "podidentity-nmi")).toBeUndefined();
      expect(objectsIn(c.server, "clusterroles.rbac.authorization.k8s.io", undefined, "podidentity-nmi")).toBeUndefined();
      // Helm never deletes the CRDs of crds/, so identities survive an uninstall.
      expect(objectsIn(c.server, "customresourcedefinitions.apiextensions.k8s.io", undefined, "azureidentities.aadpodidentity.k8s.io")).toBeDefined();
      const list = await helm(["list", "--all-namespaces", "--short"], c.env);
      expect(list.stdout.trim()).toBe("");
    } finally {
      await c.close();
    }
  });

  it("--server-side=false (helm 3's way, still offered by helm 4): a three-way merge whose writes are helm's Update entries; an upgrade keeps the release's method", async () => {
    const c = await startCluster();
    try {
      const install = await helm(["install", "podidentity", CHART, "--namespace", "kube-system", "--server-side=false"], c.env);
      expect(install.code, install.stderr).toBe(0);
      expect(install.stdout).toMatch(/STATUS: deployed/);
      const mic = () => objectsIn(c.server, "deployments.apps", "kube-system", "podidentity-mic") as Managed;
      expect(managers(mic())).toEqual(["helm/Update"]);
      const upgrade = await helm(["upgrade", "podidentity", CHART, "--namespace", "kube-system", "--set", "mic.replicas=3"], c.env);
      expect(upgrade.code, upgrade.stderr).toBe(0);
      expect(upgrade.stdout).toMatch(/REVISION: 2/);
      expect(mic().spec.replicas).toBe(3);
      // Still no Apply entry: helm 4's upgrade follows the method the release was installed with.
      expect(managers(mic())).toEqual(["helm/Update"]);
    } finally {
      await c.close();
    }
  });

  it("the seed guide's command shape from a chart repository served on loopback: repo add, then install aad-pod-identity <repo>/<chart> onto the testbed", async () => {
    const repoDir = join(dir, "repo");
    const pkg = await helm(["package", CHART, "--destination", repoDir], helmEnv);
    expect(pkg.code, pkg.stderr).toBe(0);
    const server: Server = createServer((req, res) => {
      const name = (req.url ?? "/").split("?")[0]!.replace(/^\/+/, "");
      // Only the index and the packaged chart, never a path outside the repository folder.
      if (!/^[\w.-]+\.(yaml|tgz)$/.test(name)) {
        res.writeHead(404).end();
        return;
      }
      readFile(join(repoDir, name)).then(
        (body) => res.writeHead(200, { "content-type": name.endsWith(".tgz") ? "application/gzip" : "text/yaml" }).end(body),
        () => res.writeHead(404).end(),
      );
    });
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    try {
      const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      const index = await helm(["repo", "index", repoDir, "--url", url], helmEnv);
      expect(index.code, index.stderr).toBe(0);
      const add = await helm(["repo", "add", "podidentity", url], helmEnv);
      expect(add.code, add.stderr).toBe(0);
      const search = await helm(["search", "repo", "podidentity/podidentity"], helmEnv);
      expect(search.stdout).toMatch(/podidentity\/podidentity\s+0\.1\.0\s+0\.1\.0/);
      const seed = ["install", "aad-pod-identity", "podidentity/podidentity", "--namespace", "kube-system", "--set", "operationMode=managed", "--set", "forceNamespaced=true"];
      const dry = await helm([...seed, "--dry-run=client"], helmEnv);
      expect(dry.code, dry.stderr).toBe(0);
      const objects = normalise(dry.stdout.slice(dry.stdout.indexOf("---")));
      const values = join(dir, "seed.yaml");
      await writeFile(values, "operationMode: managed\nforceNamespaced: true\n");
      expect(objects).toEqual(normalise(render(values, "kube-system").stdout));
      expect([...objects.keys()].some((k) => k.startsWith("Deployment/"))).toBe(false);

      const c = await startCluster();
      try {
        const install = await helm(seed, { ...c.env, ...helmEnv, KUBECONFIG: c.env["KUBECONFIG"]! });
        expect(install.code, install.stderr).toBe(0);
        expect(install.stdout).toMatch(/NAME: aad-pod-identity[\s\S]*STATUS: deployed/);
        const ds = objectsIn(c.server, "daemonsets.apps", "kube-system", "podidentity-nmi") as { spec: { template: { spec: { containers: { args: string[] }[] } } } };
        expect(ds.spec.template.spec.containers[0]?.args).toEqual(expect.arrayContaining(["--operation-mode=managed", "--force-namespaced=true"]));
        expect(objectsIn(c.server, "deployments.apps", "kube-system", "podidentity-mic")).toBeUndefined();
      } finally {
        await c.close();
      }
    } finally {
      await new Promise<void>((ok) => server.close(() => ok()));
    }
  });
});
