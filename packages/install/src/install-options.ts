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
}

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
  leaseName: "podidentity-mic",
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
  for (const id of o.immutableUserMsis) {
    if (!/^[0-9a-fA-F-]{36}$/.test(id)) {
      throw new InstallOptionsError(`--immutable-user-msis takes client IDs (GUIDs), got "${id}"`);
    }
  }
  return { ...o, immutableUserMsis: [...o.immutableUserMsis], identities: [...o.identities] };
}
