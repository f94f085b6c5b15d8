import type { AzureIdentity, AzureIdentityBinding } from "@podidentity/api";
import { parseDuration } from "@podidentity/daemon";
import type { IDaemonSetUpdateStrategy } from "kubernetes-models/apps/v1/DaemonSetUpdateStrategy";
import type { IAffinity } from "kubernetes-models/v1/Affinity";
import type { IResourceRequirements } from "kubernetes-models/v1/ResourceRequirements";
import type { IToleration } from "kubernetes-models/v1/Toleration";
import type { ITopologySpreadConstraint } from "kubernetes-models/v1/TopologySpreadConstraint";

/** `standard`: MIC assigns identities to nodes, NMI serves them. `managed`: NMI only; identities are assigned by hand. */
export type OperationMode = "standard" | "managed";

/** Scheduling and pod settings of one workload (v1.8's chart `mic.*` / `nmi.*` values of the same names). */
export interface WorkloadSettings {
  /** Image name under `imageRegistry` (v1.8's `mic.image`); podidentity's images are podidentity-mic / podidentity-nmi. */
  imageName: string;
  /** Image tag; unset: `tag`. */
  tag?: string | undefined;
  /** Unset: none. */
  priorityClassName?: string | undefined;
  nodeSelector: Readonly<Record<string, string>>;
  tolerations: readonly IToleration[];
  /** Unset: none. */
  affinity?: IAffinity | undefined;
  resources: IResourceRequirements;
  /** Added to the pods' annotations / labels (never replacing the selector labels). */
  podAnnotations: Readonly<Record<string, string>>;
  podLabels: Readonly<Record<string, string>>;
  /** klog verbosity passed as `-v=<n>` (the daemons map it to a log level); unset: not passed. */
  logVerbosity?: number | undefined;
  httpProbePort: number;
  prometheusPort: number;
}

export interface MicSettings extends WorkloadSettings {
  replicas: number;
  topologySpreadConstraints: readonly ITopologySpreadConstraint[];
  /** MIC's PodDisruptionBudget spec (minAvailable or maxUnavailable). */
  podDisruptionBudget: { minAvailable?: number | string; maxUnavailable?: number | string };
  /** The leader-election Lease (`--leader-election-name`); MIC's Role grants get/update on this name only. */
  leaseName: string;
  /** `--leader-election-duration` (Go duration, e.g. `15s`); unset: MIC's default. */
  leaderElectionDuration?: string | undefined;
  /** `--identity-assignment-reconcile-interval` (Go duration); unset: MIC's default. */
  identityAssignmentReconcileInterval?: string | undefined;
}

export interface NmiSettings extends WorkloadSettings {
  updateStrategy: IDaemonSetUpdateStrategy;
  /** The node's kubelet flags file NMI checks for kubenet, mounted as that single file (`FileOrCreate`, as v1.8). */
  kubeletConfig: string;
  allowNetworkPluginKubenet: boolean;
  /** `--block-instance-metadata` / `--metadata-header-required`; unset: NMI's defaults (false / true). */
  blockInstanceMetadata?: boolean | undefined;
  metadataHeaderRequired?: boolean | undefined;
  /** `--ipt-update-interval-sec`; unset: NMI's default (60). */
  ipTablesUpdateIntervalSec?: number | undefined;
  /** `--enable-conntrack-deletion`; unset: NMI's default (false). */
  enableConntrackDeletion?: boolean | undefined;
}

/** Everything `render` takes. Flags map onto these one to one (see main.ts). */
export interface InstallOptions {
  mode: OperationMode;
  /** Where MIC, NMI, their service accounts, the leader-election Lease and the MIC exception live. */
  namespace: string;
  /** `--force-namespaced` for MIC and NMI; `false` restores v1.8's cross-namespace matching (standard mode only). */
  forceNamespaced: boolean;
  /** Image names are `<imageRegistry>/podidentity-mic:<tag>` and `<imageRegistry>/podidentity-nmi:<tag>`. */
  imageRegistry: string;
  tag: string;
  /** Secret (in `namespace`) holding MIC's cloud config under the key `azure.json`. */
  azureJsonSecret: string;
  /** Client IDs MIC never removes from a VM/VMSS (`--immutable-user-msis`). */
  immutableUserMsis: readonly string[];
  /**
   * Lets NMI read Secrets, which service-principal identities (types 1 and 2) need for their `clientPassword`.
   * Off by default: with only managed identities NMI never reads a Secret (v1.8's `rbac.allowAccessToSecrets`).
   */
  allowAccessToSecrets: boolean;
  /** AzureIdentity and AzureIdentityBinding objects to render with the install (from a values file). */
  identities: readonly IdentityWithBinding[];
  /**
   * The target cluster's Kubernetes version (`--kube-version`, e.g. `v1.28.4` or `1.28`): render refuses one below
   * MIN_KUBERNETES_VERSION instead of printing manifests its API server would reject. Unset: not checked.
   */
  kubeVersion?: string | undefined;
  imagePullPolicy: "Always" | "IfNotPresent" | "Never";
  /** Names of Secrets (in `namespace`) used to pull the images. */
  imagePullSecrets: readonly string[];
  /** Render the AzurePodIdentityException that lets MIC's pods reach IMDS (v1.8's `installMICException`). */
  installMicException: boolean;
  /** Render the aggregated view/edit ClusterRoles for the custom resources (v1.8's `rbac.createUserFacingClusterRoles`). */
  createUserFacingClusterRoles: boolean;
  /**
   * NMI removes the startup taint `podidentity.io/nmi-not-ready:NoSchedule` from its node (`--remove-node-taint`),
   * which needs cluster-wide `patch`/`update` on Nodes. false: NMI gets read access to Nodes only.
   */
  startupTaint: boolean;
  /**
   * Render a PrometheusRule (monitoring.coreos.com/v1, the Prometheus Operator's kind) with the recording rules that
   * give aad-pod-identity v1.8's `aadpodidentity_*` series (chart value `prometheus.recordingRules.enabled`).
   */
  prometheusRecordingRules: boolean;
  /** Added to that PrometheusRule's labels (`prometheus.recordingRules.labels`), e.g. what the Operator's ruleSelector matches. */
  prometheusRuleLabels: Readonly<Record<string, string>>;
  mic: MicSettings;
  nmi: NmiSettings;
}

/** What callers pass: any option, and any part of `mic` / `nmi` (the rest comes from the defaults). */
export type InstallInput = Partial<Omit<InstallOptions, "mic" | "nmi">> & { mic?: Partial<MicSettings>; nmi?: Partial<NmiSettings> };

/**
 * The oldest Kubernetes the rendered manifests work on, and why: the newest API version or field each needs
 * (docs/install.md, "Requirements").
 */
export const MIN_KUBERNETES_VERSION = { major: 1, minor: 21 } as const;
export const KUBERNETES_VERSION_NEEDS: readonly { minor: number; what: string }[] = [
  { minor: 21, what: "PodDisruptionBudget policy/v1 (MIC's PDB)" },
  { minor: 19, what: "seccompProfile and topologySpreadConstraints in the pod specs" },
  { minor: 16, what: "CustomResourceDefinition apiextensions.k8s.io/v1" },
  { minor: 14, what: "Lease coordination.k8s.io/v1 (MIC's leader election)" },
];

export interface IdentityWithBinding {
  identity: AzureIdentity;
  binding: AzureIdentityBinding;
}

/** Version of the images this release of the installer renders by default; kept equal to package.json (tested). */
export const INSTALL_VERSION = "0.1.0";

export const DEFAULT_INSTALL_OPTIONS: Readonly<InstallOptions> = Object.freeze<InstallOptions>({
  mode: "standard",
  namespace: "kube-system",
  forceNamespaced: true,
  imageRegistry: "ghcr.io/podidentity",
  tag: INSTALL_VERSION,
  azureJsonSecret: "podidentity-azure-json",
  immutableUserMsis: [],
  allowAccessToSecrets: false,
  identities: [],
  imagePullPolicy: "IfNotPresent",
  imagePullSecrets: [],
  installMicException: true,
  createUserFacingClusterRoles: false,
  startupTaint: true,
  prometheusRecordingRules: false,
  prometheusRuleLabels: {},
  mic: {
    imageName: "podidentity-mic",
    nodeSelector: { "kubernetes.io/os": "linux" },
    tolerations: [],
    // Prefer MIC's replicas on different nodes (selector: MIC's own pods only).
    affinity: {
      podAntiAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          { weight: 100, podAffinityTerm: { topologyKey: "kubernetes.io/hostname", labelSelector: { matchLabels: { "app.kubernetes.io/name": "podidentity-mic" } } } },
        ],
      },
    },
    // v1.8's chart values; MIC holds informer caches of pods, nodes and the custom resources.
    resources: { requests: { cpu: "100m", memory: "256Mi" }, limits: { cpu: "200m", memory: "1Gi" } },
    podAnnotations: {},
    podLabels: {},
    httpProbePort: 8080,
    prometheusPort: 8888,
    replicas: 2,
    topologySpreadConstraints: [],
    podDisruptionBudget: { minAvailable: 1 },
    leaseName: "aad-pod-identity-mic",
  },
  nmi: {
    imageName: "podidentity-nmi",
    priorityClassName: "system-node-critical",
    nodeSelector: { "kubernetes.io/os": "linux" },
    // Every taint, including the startup taint NMI removes once interception is live.
    tolerations: [{ operator: "Exists" }],
    resources: { requests: { cpu: "100m", memory: "256Mi" }, limits: { cpu: "200m", memory: "512Mi" } },
    podAnnotations: {},
    podLabels: {},
    httpProbePort: 8085,
    prometheusPort: 9090,
    updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } },
    kubeletConfig: "/etc/default/kubelet",
    allowNetworkPluginKubenet: false,
  },
});

/** Names of the objects the installer creates; one place, so the docs, the RBAC check and tests agree. */
export const INSTALL_NAMES = {
  mic: "podidentity-mic",
  nmi: "podidentity-nmi",
  micLeaderElection: "podidentity-mic-leader-election",
  /** NMI's Role in its namespace: `get` on its own DaemonSet, read on SIGTERM (keep or remove the iptables rules). */
  nmiDaemonSetReader: "podidentity-nmi-daemonset-reader",
  micException: "podidentity-mic",
  aksAddonException: "aks-addon-exception",
  aksAddonExceptionNamespace: "kube-system",
  /** The Lease MIC replicas compete for (coordination.k8s.io/v1). */
  /** v1.8's default name, which is also MIC's own default (DEFAULT_MIC_OPTIONS; tested): MIC run without --leader-election-name works under this Role. */
  leaseName: "aad-pod-identity-mic",
  /** Where the azure.json Secret is mounted in MIC's container. */
  cloudConfigDir: "/etc/podidentity",
  cloudConfigKey: "azure.json",
} as const;

/** Ports, as MIC's and NMI's own defaults (docs/contract.md; v1.8's chart used 8085 for NMI's probes). */
export const INSTALL_PORTS = {
  micHttpProbe: 8080,
  micPrometheus: 8888,
  nmiHttpProbe: 8085,
  nmiPrometheus: 9090,
} as const;

/** Thrown for options that cannot be rendered; `code` is stable. */
export class InstallOptionsError extends Error {
  readonly code = "INVALID_INSTALL_OPTIONS";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "InstallOptionsError";
  }
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const IMAGE_TAG = /^[\w][\w.-]{0,127}$/;
// A registry host (with optional port) and optional path, lower case, as the OCI distribution spec allows.
const IMAGE_REGISTRY = /^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\.[a-z0-9]+([._-][a-z0-9]+)*)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/;

/** Fills in defaults and checks every option; throws InstallOptionsError naming the flag. */
export function resolveInstallOptions(input: InstallInput = {}): InstallOptions {
  const definedOf = <T extends object>(x: T | undefined): Partial<T> => Object.fromEntries(Object.entries(x ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
  const defined = definedOf(input) as Partial<InstallOptions>;
  const o: InstallOptions = {
    ...DEFAULT_INSTALL_OPTIONS,
    ...defined,
    mic: { ...DEFAULT_INSTALL_OPTIONS.mic, ...definedOf(input.mic) },
    nmi: { ...DEFAULT_INSTALL_OPTIONS.nmi, ...definedOf(input.nmi) },
  };
  if (o.mode !== "standard" && o.mode !== "managed") {
    throw new InstallOptionsError(`--mode must be "standard" or "managed", got "${String(o.mode)}"`);
  }
  if (o.mode === "managed" && !o.forceNamespaced) {
    // NMI refuses this too: in managed mode nothing else keeps a pod to its own namespace's identities.
    throw new InstallOptionsError("--mode managed requires --force-namespaced=true (NMI refuses to start otherwise)");
  }
  if (!DNS_LABEL.test(o.namespace) || o.namespace.length > 63) {
    throw new InstallOptionsError(`--namespace must be a DNS label (lower case, digits, '-'), got "${o.namespace}"`);
  }
  if (!IMAGE_REGISTRY.test(o.imageRegistry)) {
    throw new InstallOptionsError(`--image-registry must look like "myregistry.azurecr.io/podidentity", got "${o.imageRegistry}"`);
  }
  if (!IMAGE_TAG.test(o.tag) || o.tag === "latest") {
    throw new InstallOptionsError(`--tag must be a version tag such as "${INSTALL_VERSION}" (not "latest": nodes would run different builds), got "${o.tag}"`);
  }
  if (!DNS_SUBDOMAIN.test(o.azureJsonSecret) || o.azureJsonSecret.length > 253) {
    throw new InstallOptionsError(`--azure-json-secret must be a Secret name, got "${o.azureJsonSecret}"`);
  }
  if (o.kubeVersion !== undefined) checkKubeVersion(o.kubeVersion);
  for (const id of o.immutableUserMsis) {
    if (!/^[0-9a-fA-F-]{36}$/.test(id)) {
      throw new InstallOptionsError(`--immutable-user-msis takes client IDs (GUIDs), got "${id}"`);
    }
  }
  if (!["Always", "IfNotPresent", "Never"].includes(o.imagePullPolicy)) {
    throw new InstallOptionsError(`image.imagePullPolicy must be Always, IfNotPresent or Never, got "${String(o.imagePullPolicy)}"`);
  }
  for (const name of o.imagePullSecrets) {
    if (!DNS_SUBDOMAIN.test(name)) throw new InstallOptionsError(`imagePullSecrets must name Secrets, got "${name}"`);
  }
  for (const c of ["mic", "nmi"] as const) checkWorkload(c, o[c]);
  if (!Number.isInteger(o.mic.replicas) || o.mic.replicas < 0 || o.mic.replicas > 10) {
    throw new InstallOptionsError(`mic.replicas must be an integer from 0 to 10, got ${String(o.mic.replicas)}`);
  }
  if (!DNS_SUBDOMAIN.test(o.mic.leaseName)) throw new InstallOptionsError(`mic.leaderElection.name must be a Lease name, got "${o.mic.leaseName}"`);
  for (const [name, d] of [["mic.leaderElection.duration", o.mic.leaderElectionDuration], ["mic.identityAssignmentReconcileInterval", o.mic.identityAssignmentReconcileInterval]] as const) {
    if (d !== undefined && !isMicDuration(d)) throw new InstallOptionsError(`${name} must be a duration such as "15s" or "3m", got "${d}"`);
  }
  if (!o.nmi.kubeletConfig.startsWith("/") || o.nmi.kubeletConfig.includes("..")) {
    throw new InstallOptionsError(`nmi.kubeletConfig must be an absolute path on the node, got "${o.nmi.kubeletConfig}"`);
  }
  for (const [key, value] of Object.entries(o.prometheusRuleLabels)) {
    if (!LABEL_KEY.test(key) || key.length > 316 || typeof value !== "string" || !LABEL_VALUE.test(value)) {
      throw new InstallOptionsError(`prometheus.recordingRules.labels must be Kubernetes labels, got ${JSON.stringify(key)}: ${JSON.stringify(value)}`);
    }
  }
  const ipt = o.nmi.ipTablesUpdateIntervalSec;
  if (ipt !== undefined && (!Number.isInteger(ipt) || ipt < 1 || ipt > 3600)) {
    throw new InstallOptionsError(`nmi.ipTableUpdateTimeIntervalInSeconds must be an integer from 1 to 3600, got ${String(ipt)}`);
  }
  return {
    ...o,
    immutableUserMsis: [...o.immutableUserMsis],
    identities: [...o.identities],
    imagePullSecrets: [...o.imagePullSecrets],
    prometheusRuleLabels: { ...o.prometheusRuleLabels },
  };
}

// A label key: an optional DNS-subdomain prefix and a name of at most 63 characters; a value of at most 63.
const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;
/** What MIC's flag accepts (the same parser): rendering never produces a value MIC refuses at start. */
function isMicDuration(text: string): boolean {
  try {
    parseDuration(text);
    return true;
  } catch {
    return false;
  }
}

function checkWorkload(component: "mic" | "nmi", w: WorkloadSettings): void {
  if (!/^[a-z0-9]+([._/-][a-z0-9]+)*$/.test(w.imageName)) throw new InstallOptionsError(`${component}.image must be an image name such as "podidentity-${component}", got "${w.imageName}"`);
  if (w.tag !== undefined && (!IMAGE_TAG.test(w.tag) || w.tag === "latest")) {
    throw new InstallOptionsError(`${component}.tag must be a version tag such as "${INSTALL_VERSION}" (not "latest"), got "${w.tag}"`);
  }
  if (w.priorityClassName !== undefined && !DNS_SUBDOMAIN.test(w.priorityClassName)) {
    throw new InstallOptionsError(`${component}.priorityClassName must be a PriorityClass name, got "${w.priorityClassName}"`);
  }
  for (const [name, port] of [["probePort", w.httpProbePort], ["prometheusPort", w.prometheusPort]] as const) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InstallOptionsError(`${component}.${name} must be a port (1-65535), got ${String(port)}`);
  }
  if (w.httpProbePort === w.prometheusPort) throw new InstallOptionsError(`${component}.probePort and ${component}.prometheusPort must differ (both ${w.httpProbePort})`);
  if (w.logVerbosity !== undefined && (!Number.isInteger(w.logVerbosity) || w.logVerbosity < 0 || w.logVerbosity > 10)) {
    throw new InstallOptionsError(`${component}.logVerbosity must be an integer from 0 to 10, got ${String(w.logVerbosity)}`);
  }
}

/** Throws InstallOptionsError for a version that is not one, or is below MIN_KUBERNETES_VERSION, naming what needs more. */
export function checkKubeVersion(version: string): void {
  const m = /^v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+][0-9A-Za-z.+-]*)?$/.exec(version.trim());
  if (!m) throw new InstallOptionsError(`--kube-version must look like "v1.28.4" or "1.28", got "${version}"`);
  const major = Number(m[1]);
  const minor = Number(m[2]);
  const min = MIN_KUBERNETES_VERSION;
  if (major > min.major || (major === min.major && minor >= min.minor)) return;
  const missing = KUBERNETES_VERSION_NEEDS.filter((n) => major < min.major || minor < n.minor).map((n) => `${n.what} needs >= ${min.major}.${n.minor}`);
  throw new InstallOptionsError(`--kube-version ${version} is below the minimum Kubernetes ${min.major}.${min.minor} these manifests need: ${missing.join("; ")}. Upgrade the cluster first.`);
}
