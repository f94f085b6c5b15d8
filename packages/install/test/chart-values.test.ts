import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { runCli } from "../src/cli";
import { parseInstallValues } from "../src/index";

const V18_VALUES = resolve(import.meta.dirname, "fixtures/v1.8-chart-values.yaml");
const CID = "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
const RID = "/subscriptions/0000/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id";
const ADMIN_SECRET = "s3cr3t-never-printed";

/** Every key of v1.8's chart values set to something other than its default (commented-out keys included). */
const FULL_V18_VALUES = `
nameOverride: pi
fullnameOverride: pi-full
image:
  repository: myregistry.azurecr.io/podidentity
  imagePullPolicy: Always
imagePullSecrets:
  - name: regcred
forceNamespaced: "true"
installMICException: "false"
adminsecret:
  cloud: AzurePublicCloud
  subscriptionID: "0000"
  resourceGroup: rg
  vmType: vmss
  tenantID: tenant
  clientID: client
  clientSecret: ${ADMIN_SECRET}
  useMSI: "false"
  userAssignedMSIClientID: ""
operationMode: standard
mic:
  image: podidentity-mic-custom
  tag: 0.1.0-rc1
  priorityClassName: mic-critical
  logVerbosity: 4
  loggingFormat: json
  replicas: 3
  resources: { limits: { cpu: 300m, memory: 2Gi }, requests: { cpu: 150m, memory: 300Mi } }
  podAnnotations: { team: identity }
  podLabels: { cost-center: "42" }
  nodeSelector: { agentpool: system }
  tolerations: [{ key: CriticalAddonsOnly, operator: Exists }]
  affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: agentpool, operator: In, values: [system] }] }] } } }
  topologySpreadConstraints: [{ maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, labelSelector: { matchLabels: { app.kubernetes.io/component: mic } } }]
  podDisruptionBudget: { maxUnavailable: 1 }
  leaderElection: { instance: mic-a, namespace: other, name: my-lease, duration: 30s }
  probePort: "8081"
  syncRetryDuration: 1h
  immutableUserMSIs: ["${CID}"]
  createDeleteBatch: "10"
  clientQps: "10"
  prometheusPort: "8889"
  cloudConfig: /etc/kubernetes/azure.json
  customCloud: { enabled: true, configPath: /etc/kubernetes/akscustom.json }
  updateUserMSIMaxRetry: "3"
  updateUserMSIRetryInterval: 2s
  identityAssignmentReconcileInterval: 5m
nmi:
  image: podidentity-nmi-custom
  tag: 0.1.0-rc1
  priorityClassName: nmi-critical
  logVerbosity: 2
  loggingFormat: text
  resources: { limits: { cpu: 250m, memory: 600Mi }, requests: { cpu: 50m, memory: 128Mi } }
  updateStrategy: { type: RollingUpdate, rollingUpdate: { maxUnavailable: 3 } }
  podAnnotations: { team: identity }
  podLabels: { cost-center: "43" }
  nodeSelector: { kubernetes.io/os: linux, pool: apps }
  tolerations: [{ key: dedicated, operator: Equal, value: apps, effect: NoSchedule }]
  affinity: { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, preference: { matchExpressions: [{ key: kubernetes.azure.com/mode, operator: In, values: [user] }] } }] } }
  ipTableUpdateTimeIntervalInSeconds: "30"
  micNamespace: kube-system
  probePort: "8086"
  retryAttemptsForCreated: "20"
  retryAttemptsForAssigned: "5"
  findIdentityRetryIntervalInSeconds: "3"
  enableScaleFeatures: false
  prometheusPort: "9091"
  blockInstanceMetadata: "true"
  metadataHeaderRequired: false
  allowNetworkPluginKubenet: true
  kubeletConfig: /etc/kubernetes/kubelet-flags
  setRetryAfterHeader: true
  enableConntrackDeletion: true
rbac:
  enabled: false
  allowAccessToSecrets: true
  pspEnabled: true
  createUserFacingClusterRoles: true
azureIdentities:
  sp:
    namespace: shop
    type: 1
    clientID: ${CID}
    tenantID: 72f988bf-86f1-41af-91ab-2d7cd011db47
    clientPassword: "{\\"name\\":\\"sp-secret\\",\\"namespace\\":\\"shop\\"}"
    auxiliaryTenantIDs: []
    binding: { name: sp-binding, selector: sp }
  kv:
    namespace: shop
    type: 0
    resourceID: ${RID}
    clientID: ${CID}
    binding: { name: kv-binding, selector: kv }
customUserAgent: migration
`;

/** The keys of FULL_V18_VALUES podidentity reports, each for the reason in chart-values.ts. */
const FULL_UNMAPPED = [
  "nameOverride",
  "fullnameOverride",
  "adminsecret",
  "customUserAgent",
  "rbac.enabled",
  "rbac.pspEnabled",
  "nmi.loggingFormat",
  "mic.leaderElection.instance",
  "mic.leaderElection.namespace",
  "mic.syncRetryDuration",
  "mic.createDeleteBatch",
  "mic.clientQps",
  "mic.cloudConfig",
  "mic.customCloud.enabled",
  "mic.updateUserMSIMaxRetry",
  "mic.updateUserMSIRetryInterval",
  "nmi.micNamespace",
  "nmi.retryAttemptsForCreated",
  "nmi.retryAttemptsForAssigned",
  "nmi.findIdentityRetryIntervalInSeconds",
  "nmi.enableScaleFeatures",
];

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  rules?: { resources: string[]; verbs: string[] }[];
}
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

function run(args: string[], files: Record<string, string> = {}): { code: number; stdout: string; stderr: string } {
  let stdout = "";
  let stderr = "";
  const code = runCli(args, {
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
    readFile: (p) => files[p] ?? readFileSync(p, "utf8"),
  });
  return { code, stdout, stderr };
}

const objects = (yaml: string): Obj[] => parseAllDocuments(yaml).map((d) => d.toJS() as Obj).filter((o) => o !== null);
const find = (objs: Obj[], kind: string, name: string): Any => objs.find((o) => o.kind === kind && o.metadata.name === name);

/** Leaf keys of a values document (maps are walked, lists and scalars are leaves). */
function leafKeys(v: unknown, prefix = ""): string[] {
  if (typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length > 0) {
    return Object.entries(v).flatMap(([k, x]) => leafKeys(x, prefix === "" ? k : `${prefix}.${k}`));
  }
  return [prefix];
}

describe("render --values with aad-pod-identity v1.8's chart values: every key honoured or reported", () => {
  it("v1.8's real default values.yaml: an error naming each key that would deploy v1.8's images or mount the node's azure.json, and nothing else", () => {
    const r = run(["render", "--values", V18_VALUES]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    const reported = [...r.stderr.matchAll(/^ {2}([\w.]+): /gm)].map((m) => m[1]);
    expect(reported.sort()).toEqual(["image.repository", "mic.cloudConfig", "mic.image", "mic.tag", "nmi.image", "nmi.tag"]);
    expect(r.stderr).toContain("--allow-unmapped-values");
    expect(r.stderr).toMatch(/image\.repository: points at aad-pod-identity v1\.8's own images/);
  });

  it("every key in v1.8's default values.yaml is one podidentity knows (none reported as unknown)", () => {
    const doc = parse(readFileSync(V18_VALUES, "utf8")) as Record<string, unknown>;
    expect(leafKeys(doc).length).toBeGreaterThan(60);
    const { unmapped } = parseInstallValues(readFileSync(V18_VALUES, "utf8"));
    expect(unmapped.filter((u) => u.reason.includes("a typo?"))).toEqual([]);
  });

  it("v1.8's default values.yaml with --allow-unmapped-values: warnings per key, v1.8's images never used, its settings honoured", () => {
    const r = run(["render", "--values", V18_VALUES, "--allow-unmapped-values"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.match(/^warning: .*: ignored /gm)).toHaveLength(6);
    expect(r.stdout).not.toContain("mcr.microsoft.com");
    expect(r.stdout).not.toContain("v1.8.17");
    const objs = objects(r.stdout);
    const ds = find(objs, "DaemonSet", "podidentity-nmi");
    const nmi = ds.spec.template.spec.containers[0];
    expect(nmi.image).toBe("ghcr.io/podidentity/podidentity-nmi:0.1.0");
    // forceNamespaced "false" (v1.8's default), probePort "8085", metadataHeaderRequired true, kubeletConfig.
    expect(nmi.args).toEqual(expect.arrayContaining(["--force-namespaced=false", "--http-probe-port=8085", "--metadata-header-required=true", "--kubelet-config=/etc/default/kubelet"]));
    expect(ds.spec.template.spec.tolerations).toEqual([{ operator: "Exists" }]);
    const mic = find(objs, "Deployment", "podidentity-mic");
    // v1.8's anti-affinity on app.kubernetes.io/component: mic, which podidentity's MIC pods carry too.
    expect(mic.spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.labelSelector.matchLabels).toEqual({
      "app.kubernetes.io/component": "mic",
    });
    expect(mic.spec.template.metadata.labels["app.kubernetes.io/component"]).toBe("mic");
    expect(mic.spec.template.spec.containers[0].resources.limits.memory).toBe("1024Mi");
    // rbac.allowAccessToSecrets: true is v1.8's default.
    expect(find(objs, "ClusterRole", "podidentity-nmi").rules.some((x: Any) => x.resources.includes("secrets"))).toBe(true);
  });

  it("a fully populated v1.8 values file: each mapped key reaches the manifests, each other key is reported (no secret value printed)", () => {
    const refused = run(["render", "--values", "full.yaml"], { "full.yaml": FULL_V18_VALUES });
    expect(refused.code).toBe(1);
    expect([...refused.stderr.matchAll(/^ {2}([\w.]+): /gm)].map((m) => m[1]).sort()).toEqual([...FULL_UNMAPPED].sort());
    expect(refused.stderr).not.toContain(ADMIN_SECRET);

    const r = run(["render", "--values", "full.yaml", "--allow-unmapped-values"], { "full.yaml": FULL_V18_VALUES });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain(ADMIN_SECRET);
    expect(r.stdout).not.toContain(ADMIN_SECRET);
    const objs = objects(r.stdout);

    const mic = find(objs, "Deployment", "podidentity-mic");
    const micPod = mic.spec.template.spec;
    expect(mic.spec.replicas).toBe(3);
    expect(micPod.containers[0].image).toBe("myregistry.azurecr.io/podidentity/podidentity-mic-custom:0.1.0-rc1");
    expect(micPod.containers[0].imagePullPolicy).toBe("Always");
    expect(micPod.imagePullSecrets).toEqual([{ name: "regcred" }]);
    expect(micPod.priorityClassName).toBe("mic-critical");
    // Maps merge into the chart's defaults as Helm merges values; lists (tolerations) replace.
    expect(micPod.nodeSelector).toEqual({ "kubernetes.io/os": "linux", agentpool: "system" });
    expect(micPod.tolerations).toEqual([{ key: "CriticalAddonsOnly", operator: "Exists" }]);
    expect(micPod.affinity.nodeAffinity).toBeDefined();
    expect(micPod.topologySpreadConstraints[0].maxSkew).toBe(1);
    expect(micPod.containers[0].resources).toEqual({ limits: { cpu: "300m", memory: "2Gi" }, requests: { cpu: "150m", memory: "300Mi" } });
    expect(mic.spec.template.metadata.annotations).toEqual({ team: "identity" });
    expect(mic.spec.template.metadata.labels["cost-center"]).toBe("42");
    expect(micPod.containers[0].args).toEqual(
      expect.arrayContaining([
        "--http-probe-port=8081",
        "--prometheus-port=8889",
        `--immutable-user-msis=${CID}`,
        "--leader-election-name=my-lease",
        "--leader-election-duration=30s",
        "--identity-assignment-reconcile-interval=5m",
        "-v=4",
      ]),
    );
    expect(find(objs, "Role", "podidentity-mic-leader-election").rules[1].resourceNames).toEqual(["my-lease"]);
    expect(find(objs, "PodDisruptionBudget", "podidentity-mic").spec.maxUnavailable).toBe(1);

    const ds = find(objs, "DaemonSet", "podidentity-nmi");
    const nmiPod = ds.spec.template.spec;
    expect(ds.spec.updateStrategy).toEqual({ type: "RollingUpdate", rollingUpdate: { maxUnavailable: 3 } });
    expect(nmiPod.containers[0].image).toBe("myregistry.azurecr.io/podidentity/podidentity-nmi-custom:0.1.0-rc1");
    expect(nmiPod.priorityClassName).toBe("nmi-critical");
    expect(nmiPod.nodeSelector).toEqual({ "kubernetes.io/os": "linux", pool: "apps" });
    expect(nmiPod.tolerations).toEqual([{ key: "dedicated", operator: "Equal", value: "apps", effect: "NoSchedule" }]);
    expect(nmiPod.affinity.nodeAffinity).toBeDefined();
    expect(nmiPod.containers[0].resources.limits).toEqual({ cpu: "250m", memory: "600Mi" });
    expect(nmiPod.containers[0].args).toEqual(
      expect.arrayContaining([
        "--force-namespaced=true",
        "--http-probe-port=8086",
        "--prometheus-port=9091",
        "--kubelet-config=/etc/kubernetes/kubelet-flags",
        "--allow-network-plugin-kubenet=true",
        "--block-instance-metadata=true",
        "--metadata-header-required=false",
        "--ipt-update-interval-sec=30",
        "--enable-conntrack-deletion=true",
        "-v=2",
      ]),
    );
    expect(nmiPod.containers[0].ports.map((p: Any) => p.containerPort)).toEqual([8086, 9091]);
    expect(nmiPod.volumes).toContainEqual({ name: "kubelet-config", hostPath: { path: "/etc/kubernetes/kubelet-flags", type: "FileOrCreate" } });
    expect(nmiPod.containers[0].volumeMounts).toContainEqual({ name: "kubelet-config", mountPath: "/etc/kubernetes/kubelet-flags", readOnly: true });

    // installMICException "false": only the AKS add-on exception; createUserFacingClusterRoles: the aggregated roles.
    expect(objs.filter((o) => o.kind === "AzurePodIdentityException").map((o) => o.metadata.name)).toEqual(["aks-addon-exception"]);
    expect(find(objs, "ClusterRole", "podidentity-view").metadata.labels["rbac.authorization.k8s.io/aggregate-to-view"]).toBe("true");
    expect(find(objs, "ClusterRole", "podidentity-edit").rules[0].verbs).toContain("create");
    // The chart's JSON-string clientPassword became the CRD's object form.
    expect(find(objs, "AzureIdentity", "sp").spec.clientPassword).toEqual({ name: "sp-secret", namespace: "shop" });
  });

  it("clientPassword: the object form and the chart's JSON-string form give the same identity; a malformed string is refused by name", () => {
    const entry = (pw: string): string =>
      `azureIdentities:\n  sp:\n    type: 1\n    clientID: ${CID}\n    tenantID: t\n    clientPassword: ${pw}\n    binding: { selector: sp }\n`;
    const asString = parseInstallValues(entry(`'{"name":"sp-secret","namespace":"default"}'`));
    const asObject = parseInstallValues(entry(`{ name: sp-secret, namespace: default }`));
    expect(asString.identities[0]?.spec).toEqual(asObject.identities[0]?.spec);
    expect(() => parseInstallValues(entry(`'{name: sp-secret'`))).toThrow(/azureIdentities\.sp\.clientPassword must be a SecretReference/);
  });

  it("a key of neither chart is reported as unknown; empty values ask for nothing and are never reported", () => {
    const { unmapped } = parseInstallValues(`nmi:\n  allowNetworkPluginKubnet: true\nmic:\n  syncRetryDuration: ""\n  cloudConfig: ""\nadminsecret: {}\n`);
    expect(unmapped).toEqual([{ key: "nmi.allowNetworkPluginKubnet", reason: expect.stringContaining("a typo?") }]);
  });

  it("image values pointing at v1.8's registry are reported even under another tag, and never rendered", () => {
    const values = `image:\n  repository: mcr.microsoft.com/oss/azure/aad-pod-identity\nmic:\n  tag: 0.1.0\nnmi:\n  tag: 0.1.0\n`;
    const r = run(["render", "--values", "v.yaml", "--allow-unmapped-values"], { "v.yaml": values });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/ignored image\.repository: points at aad-pod-identity v1\.8's own images/);
    expect(r.stdout).not.toContain("mcr.microsoft.com");
  });
});

describe("least privilege: NMI's write access to Nodes follows the startup-taint switch", () => {
  const nodeRule = (yaml: string): Any => find(objects(yaml), "ClusterRole", "podidentity-nmi").rules.find((x: Any) => x.resources.includes("nodes"));
  const nmiArgs = (yaml: string): string[] => find(objects(yaml), "DaemonSet", "podidentity-nmi").spec.template.spec.containers[0].args;

  it("default (startup taint on): patch/update on Nodes, NMI removes the taint", () => {
    const r = run(["render"]);
    expect(nodeRule(r.stdout).verbs).toEqual(["get", "list", "watch", "patch", "update"]);
    expect(nmiArgs(r.stdout)).not.toContain("--remove-node-taint=false");
  });

  it("--startup-taint=false or nmi.startupTaint: false: read-only Nodes and NMI told not to remove the taint", () => {
    for (const r of [run(["render", "--startup-taint=false"]), run(["render", "--values", "v.yaml"], { "v.yaml": "nmi:\n  startupTaint: false\n" })]) {
      expect(r.code, r.stderr).toBe(0);
      expect(nodeRule(r.stdout).verbs).toEqual(["get", "list", "watch"]);
      expect(nmiArgs(r.stdout)).toContain("--remove-node-taint=false");
    }
  });
});
