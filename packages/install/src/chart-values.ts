import type { InstallInput, MicSettings, NmiSettings } from "./install-options";
import { DEFAULT_INSTALL_OPTIONS, InstallOptionsError } from "./install-options";

/**
 * Every key of aad-pod-identity v1.8's chart 4.1.x values.yaml (and the keys podidentity's own chart adds, see
 * charts/podidentity/values.yaml), mapped onto InstallOptions, or reported with the reason podidentity does not
 * honour it. A key that asks for what podidentity does anyway (e.g. `nmi.enableScaleFeatures: true`) is honoured;
 * an empty value ("", {}, [], null) asks for nothing and is never reported.
 */

/** A values key podidentity does not honour, and why. Never carries the value (it may be a secret). */
export interface UnmappedValue {
  key: string;
  reason: string;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const isEmpty = (v: unknown): boolean =>
  v === undefined || v === null || v === "" || (Array.isArray(v) && v.length === 0) || (isObj(v) && Object.keys(v).length === 0);

/** The registry path of v1.8's images; podidentity never deploys them. */
export const V18_IMAGE_REPOSITORY = "mcr.microsoft.com/oss/azure/aad-pod-identity";
const V18_TAG = /^v\d+\.\d+\.\d+/;

const RETRY_POLLING = "NMI waits on the AzureAssignedIdentity watch instead of polling, for up to --wait-for-assignment (default 20s)";
const ARM_RETRY = "MIC retries a failed VM/VMSS update with backoff until it succeeds (permanent failures are reported on the AzureAssignedIdentity)";
const V18_IMAGES = `points at aad-pod-identity v1.8's own images, which podidentity never deploys: build podidentity's images (make images), push them to your registry and set image.repository (or --image-registry)`;

/** Walks a values document, marking each key it reads; what is left over is reported as unknown. */
class ValuesReader {
  private readonly seen = new Set<string>();
  readonly unmapped: UnmappedValue[] = [];
  constructor(
    private readonly doc: Obj,
    private readonly source: string,
  ) {}

  get(key: string): unknown {
    this.seen.add(key);
    let v: unknown = this.doc;
    for (const part of key.split(".")) v = isObj(v) ? v[part] : undefined;
    return v;
  }

  /** Reports `key` when it is set (non-empty) and `honoured` does not accept its value. */
  report(key: string, reason: string, honoured: (v: unknown) => boolean = () => false): void {
    const v = this.get(key);
    if (!isEmpty(v) && !honoured(v)) this.unmapped.push({ key, reason });
  }

  str(key: string): string | undefined {
    const v = this.get(key);
    if (isEmpty(v)) return undefined;
    if (typeof v === "string") return v.trim();
    if (typeof v === "number" || typeof v === "boolean") return String(v);
    throw new InstallOptionsError(`${this.source}: ${key} must be a string, got ${JSON.stringify(v)}`);
  }

  /** v1.8's chart quoted booleans ("true"); YAML booleans work too. */
  bool(key: string): boolean | undefined {
    const v = this.get(key);
    if (isEmpty(v)) return undefined;
    if (typeof v === "boolean") return v;
    if (typeof v === "string" && /^(true|false)$/i.test(v.trim())) return v.trim().toLowerCase() === "true";
    throw new InstallOptionsError(`${this.source}: ${key} must be true or false, got ${JSON.stringify(v)}`);
  }

  /** Integers as the chart wrote them: numbers or quoted numbers ("8085"). */
  int(key: string): number | undefined {
    const v = this.get(key);
    if (isEmpty(v)) return undefined;
    const n = typeof v === "number" ? v : typeof v === "string" && /^\s*-?\d+\s*$/.test(v) ? Number(v) : Number.NaN;
    if (!Number.isInteger(n)) throw new InstallOptionsError(`${this.source}: ${key} must be an integer, got ${JSON.stringify(v)}`);
    return n;
  }

  map(key: string): Record<string, string> | undefined {
    const v = this.get(key);
    if (v === undefined || v === null) return undefined;
    if (!isObj(v)) throw new InstallOptionsError(`${this.source}: ${key} must be a mapping`);
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, String(x)]));
  }

  obj<T>(key: string): T | undefined {
    const v = this.get(key);
    if (v === undefined || v === null) return undefined;
    if (!isObj(v)) throw new InstallOptionsError(`${this.source}: ${key} must be a mapping`);
    return v as T;
  }

  list<T>(key: string): T[] | undefined {
    const v = this.get(key);
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) throw new InstallOptionsError(`${this.source}: ${key} must be a list`);
    return v as T[];
  }

  /** Every set key nobody read: not a key of either chart (a typo, or a newer chart's). */
  reportUnknown(): void {
    const walk = (v: unknown, prefix: string): void => {
      if (this.seen.has(prefix)) return;
      if (isObj(v) && Object.keys(v).length > 0) {
        for (const [k, x] of Object.entries(v)) walk(x, prefix === "" ? k : `${prefix}.${k}`);
      } else if (!isEmpty(v) && prefix !== "") {
        this.unmapped.push({ key: prefix, reason: "not a value of aad-pod-identity v1.8's chart 4.1.x nor of podidentity's chart (a typo?)" });
      }
    };
    walk(this.doc, "");
  }
}

const defined = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

/**
 * Helm merges a values file's maps into the chart's default values (lists and scalars replace), so a values
 * `nodeSelector: { pool: apps }` keeps the default `kubernetes.io/os: linux`; render does the same, so both give the
 * same objects (packages/install/test/helm-chart.test.ts).
 */
function helmMerge<T>(defaults: T, value: T | undefined): T | undefined {
  if (value === undefined) return undefined;
  if (!isObj(defaults) || !isObj(value)) return value;
  const out: Obj = { ...defaults };
  for (const [k, v] of Object.entries(value)) out[k] = k in defaults ? helmMerge(defaults[k], v) : v;
  return out as T;
}

function workload(r: ValuesReader, c: "mic" | "nmi"): Partial<MicSettings & NmiSettings> {
  const d = DEFAULT_INSTALL_OPTIONS[c];
  const image = r.str(`${c}.image`);
  const tag = r.str(`${c}.tag`);
  if (image === c) r.unmapped.push({ key: `${c}.image`, reason: `"${c}" is v1.8's image name; podidentity's is podidentity-${c}. ${V18_IMAGES}` });
  if (tag !== undefined && V18_TAG.test(tag)) r.unmapped.push({ key: `${c}.tag`, reason: `"${tag}" is a v1.8 release tag. ${V18_IMAGES}` });
  const format = r.str(`${c}.loggingFormat`);
  if (format !== undefined && format !== "json") {
    r.unmapped.push({ key: `${c}.loggingFormat`, reason: "podidentity logs JSON lines only (klog's text format is not available)" });
  }
  return defined({
    imageName: image === c ? undefined : image,
    tag: tag !== undefined && V18_TAG.test(tag) ? undefined : tag,
    priorityClassName: r.str(`${c}.priorityClassName`),
    logVerbosity: r.int(`${c}.logVerbosity`),
    resources: helmMerge(d.resources, r.obj(`${c}.resources`)),
    podAnnotations: helmMerge(d.podAnnotations, r.map(`${c}.podAnnotations`)),
    podLabels: helmMerge(d.podLabels, r.map(`${c}.podLabels`)),
    nodeSelector: helmMerge(d.nodeSelector, r.map(`${c}.nodeSelector`)),
    tolerations: r.list(`${c}.tolerations`),
    affinity: helmMerge(d.affinity, r.obj(`${c}.affinity`)),
    httpProbePort: r.int(`${c}.probePort`),
    prometheusPort: r.int(`${c}.prometheusPort`),
  });
}

/** Maps a values document (already known to be a mapping) onto install options; `unmapped` lists what is not honoured. */
export function mapChartValues(doc: Obj, source: string): { options: InstallInput; unmapped: UnmappedValue[] } {
  const r = new ValuesReader(doc, source);
  const options: InstallInput = {};

  // --- top level
  r.report("nameOverride", "podidentity's objects have fixed names (podidentity-mic, podidentity-nmi), which never collide with a v1.8 release during a migration");
  r.report("fullnameOverride", "podidentity's objects have fixed names (podidentity-mic, podidentity-nmi), which never collide with a v1.8 release during a migration");
  const repository = r.str("image.repository");
  if (repository !== undefined) {
    if (repository.replace(/\/+$/, "") === V18_IMAGE_REPOSITORY || repository.includes("/aad-pod-identity")) {
      r.unmapped.push({ key: "image.repository", reason: V18_IMAGES });
    } else {
      options.imageRegistry = repository.replace(/\/+$/, "");
    }
  }
  const pullPolicy = r.str("image.imagePullPolicy");
  if (pullPolicy !== undefined) options.imagePullPolicy = pullPolicy as InstallInput["imagePullPolicy"] & string;
  const pullSecrets = r.list<unknown>("imagePullSecrets");
  if (pullSecrets !== undefined) {
    options.imagePullSecrets = pullSecrets.map((s, i) => {
      const name = isObj(s) ? s["name"] : s;
      if (typeof name !== "string" || name === "") throw new InstallOptionsError(`${source}: imagePullSecrets[${i}] must be { name: <secret> }`);
      return name;
    });
  }
  const mode = r.str("operationMode");
  if (mode !== undefined) {
    if (mode !== "standard" && mode !== "managed") throw new InstallOptionsError(`${source}: operationMode must be standard or managed, got "${mode}"`);
    options.mode = mode;
  }
  const forceNamespaced = r.bool("forceNamespaced");
  // v1.8's chart passed --forceNamespaced to NMI in managed mode whatever forceNamespaced said.
  if (forceNamespaced !== undefined) options.forceNamespaced = mode === "managed" ? true : forceNamespaced;
  const micException = r.bool("installMICException");
  if (micException !== undefined) options.installMicException = micException;
  r.report(
    "adminsecret",
    "MIC reads its Azure credential from azure.json in the Secret named by azureJsonSecret (--azure-json-secret, key azure.json); create that Secret with these settings (values not shown)",
  );
  r.report("customUserAgent", "podidentity's requests carry its own User-Agent (component and version); a custom suffix is not supported");
  const azureJsonSecret = r.str("azureJsonSecret");
  if (azureJsonSecret !== undefined) options.azureJsonSecret = azureJsonSecret;
  const startupTaint = r.bool("nmi.startupTaint");
  if (startupTaint !== undefined) options.startupTaint = startupTaint;

  // --- rbac
  r.report("rbac.enabled", "podidentity always renders its ServiceAccounts and RBAC: MIC and NMI cannot run without them", (v) => v === true || v === "true");
  const secrets = r.bool("rbac.allowAccessToSecrets");
  if (secrets !== undefined) options.allowAccessToSecrets = secrets;
  r.report(
    "rbac.pspEnabled",
    "PodSecurityPolicy was removed in Kubernetes 1.25; label the namespace for Pod Security admission instead (NMI needs the privileged level: hostNetwork, NET_ADMIN)",
    (v) => v === false || v === "false",
  );
  const userRoles = r.bool("rbac.createUserFacingClusterRoles");
  if (userRoles !== undefined) options.createUserFacingClusterRoles = userRoles;

  // --- mic
  const mic: Partial<MicSettings> = { ...workload(r, "mic") };
  const replicas = r.int("mic.replicas");
  if (replicas !== undefined) mic.replicas = replicas;
  const spread = r.list<never>("mic.topologySpreadConstraints");
  if (spread !== undefined) mic.topologySpreadConstraints = spread;
  const pdb = r.obj<MicSettings["podDisruptionBudget"]>("mic.podDisruptionBudget");
  // One of the two: maxUnavailable when given (the chart's template does the same), else minAvailable.
  if (pdb !== undefined && Object.keys(pdb).length > 0) {
    mic.podDisruptionBudget = pdb.maxUnavailable !== undefined ? { maxUnavailable: pdb.maxUnavailable } : { minAvailable: pdb.minAvailable ?? 1 };
  }
  r.report("mic.leaderElection.instance", "each MIC replica needs its own name in the Lease: podidentity sets it to the pod's name (one fixed name would make both replicas leaders)");
  r.report("mic.leaderElection.namespace", "the Lease lives in MIC's own namespace, where its Role grants access to it");
  const leaseName = r.str("mic.leaderElection.name");
  if (leaseName !== undefined) mic.leaseName = leaseName;
  const leaseDuration = r.str("mic.leaderElection.duration");
  if (leaseDuration !== undefined) mic.leaderElectionDuration = leaseDuration;
  r.report("mic.syncRetryDuration", "MIC reconciles on every change and repairs drift every mic.identityAssignmentReconcileInterval");
  const immutable = r.list<unknown>("mic.immutableUserMSIs");
  if (immutable !== undefined) options.immutableUserMsis = immutable.map(String);
  r.report("mic.createDeleteBatch", "MIC puts all changes for one VM/VMSS into one update");
  r.report("mic.clientQps", "MIC reads Kubernetes through watches; its ARM writes are paced by --arm-write-budget");
  r.report(
    "mic.cloudConfig",
    "MIC reads azure.json from the Secret named by azureJsonSecret (--azure-json-secret), not from the node's file (a hostPath would need MIC to run as root): kubectl -n <namespace> create secret generic podidentity-azure-json --from-file=azure.json=/etc/kubernetes/azure.json",
  );
  r.report("mic.customCloud.enabled", "custom clouds (AZURE_ENVIRONMENT_FILEPATH) are not rendered; MIC takes --arm-endpoint and --authority-host instead", (v) => v === false || v === "false");
  r.get("mic.customCloud.configPath"); // only read with customCloud.enabled, which is reported
  r.report("mic.updateUserMSIMaxRetry", ARM_RETRY);
  r.report("mic.updateUserMSIRetryInterval", ARM_RETRY);
  const reconcile = r.str("mic.identityAssignmentReconcileInterval");
  if (reconcile !== undefined) mic.identityAssignmentReconcileInterval = reconcile;

  // --- nmi
  const nmi: Partial<NmiSettings> = { ...workload(r, "nmi") };
  const strategy = r.obj<NmiSettings["updateStrategy"]>("nmi.updateStrategy");
  if (strategy !== undefined && Object.keys(strategy).length > 0) nmi.updateStrategy = helmMerge(DEFAULT_INSTALL_OPTIONS.nmi.updateStrategy, strategy);
  const ipt = r.int("nmi.ipTableUpdateTimeIntervalInSeconds");
  if (ipt !== undefined) nmi.ipTablesUpdateIntervalSec = ipt;
  r.report(
    "nmi.micNamespace",
    "MIC's own token requests reach IMDS through the AzurePodIdentityException the installer renders (installMICException), not through a namespace and pod-name pattern",
  );
  r.report("nmi.retryAttemptsForCreated", RETRY_POLLING);
  r.report("nmi.retryAttemptsForAssigned", RETRY_POLLING);
  r.report("nmi.findIdentityRetryIntervalInSeconds", RETRY_POLLING);
  r.report("nmi.enableScaleFeatures", "what v1.8 put behind it (informers, no per-pod status churn) is always on in podidentity", (v) => v === true || v === "true");
  const block = r.bool("nmi.blockInstanceMetadata");
  if (block !== undefined) nmi.blockInstanceMetadata = block;
  const header = r.bool("nmi.metadataHeaderRequired");
  if (header !== undefined) nmi.metadataHeaderRequired = header;
  const kubenet = r.bool("nmi.allowNetworkPluginKubenet");
  if (kubenet !== undefined) nmi.allowNetworkPluginKubenet = kubenet;
  const kubeletConfig = r.str("nmi.kubeletConfig");
  if (kubeletConfig !== undefined) nmi.kubeletConfig = kubeletConfig;
  // NMI always sets Retry-After on its 429 and 503 answers; clients that ignore the header are unaffected either way.
  r.bool("nmi.setRetryAfterHeader");
  const conntrack = r.bool("nmi.enableConntrackDeletion");
  if (conntrack !== undefined) nmi.enableConntrackDeletion = conntrack;

  // --- prometheus (podidentity's own)
  const recordingRules = r.bool("prometheus.recordingRules.enabled");
  if (recordingRules !== undefined) options.prometheusRecordingRules = recordingRules;
  const ruleLabels = r.map("prometheus.recordingRules.labels");
  if (ruleLabels !== undefined) options.prometheusRuleLabels = ruleLabels;

  // azureIdentities are read by parseInstallValues.
  r.get("azureIdentities");
  r.reportUnknown();
  if (Object.keys(mic).length > 0) options.mic = mic;
  if (Object.keys(nmi).length > 0) options.nmi = nmi;
  return { options, unmapped: r.unmapped };
}

/** The error (default) or warning lines for unmapped values, one per key. */
export function formatUnmapped(unmapped: readonly UnmappedValue[]): string[] {
  return unmapped.map((u) => `${u.key}: ${u.reason}`);
}
