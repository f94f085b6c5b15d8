import type { AzureIdentity, AzureIdentityBinding } from "@podidentity/api";

/** `standard`: MIC assigns identities to nodes, NMI serves them. `managed`: NMI only; identities are assigned by hand. */
export type OperationMode = "standard" | "managed";

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
}

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

export const DEFAULT_INSTALL_OPTIONS: Readonly<InstallOptions> = Object.freeze({
  mode: "standard",
  namespace: "kube-system",
  forceNamespaced: true,
  imageRegistry: "ghcr.io/podidentity",
  tag: INSTALL_VERSION,
  azureJsonSecret: "podidentity-azure-json",
  immutableUserMsis: [],
  allowAccessToSecrets: false,
  identities: [],
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
export function resolveInstallOptions(input: Partial<InstallOptions> = {}): InstallOptions {
  const defined = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) as Partial<InstallOptions>;
  const o: InstallOptions = { ...DEFAULT_INSTALL_OPTIONS, ...defined };
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
  return { ...o, immutableUserMsis: [...o.immutableUserMsis], identities: [...o.identities] };
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
