/**
 * A whole pod identity cluster on one machine, on real kernel networking: the testbed's Azure (ARM, Entra ID, Key
 * Vault on their real host names, one IMDS behind each node's 169.254.169.254), its Kubernetes API server (HTTPS,
 * one token per component), nodes and pods as network namespaces, MIC and one NMI per node as real processes
 * (`node …/dist/main.js`) with NMI's real iptables rules in its node's namespace.
 *
 * It must run inside the private network namespace `runInPrivateNetns` makes (the demo and the e2e suite re-run
 * themselves there), so nothing touches the machine's network or /etc.
 */
import { cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { randomBytes } from "node:crypto";
import { customResourceDefinitions } from "@podidentity/api";
import { INSTALL_NAMES, nmiDaemonSet, resolveInstallOptions } from "@podidentity/install";
import {
  AzureCloud,
  KubeApiServer,
  Topology,
  azureProviderId,
  privateNetnsInfo,
  renderKubeconfig,
  type ArmServer,
  type ComputeResource,
  type EntraServer,
  type ImdsServer,
  type KeyVaultServer,
  type ProcessResult,
  type RunInNetnsOptions,
  type SpawnInNetnsOptions,
  type TopologyNode,
  type TopologyPod,
  type AddPodOptions,
  type UserAssignedIdentity,
} from "@podidentity/testbed";
import { AssignedIdentityWatch } from "./assigned-identity-watch";
import { CLUSTER_USERS, DEFAULT_E2E_CLUSTER_OPTIONS, NMI_NOT_READY_TAINT, type E2eClusterOptions } from "./cluster-options";
import { ComponentProcess } from "./component-process";
import { httpGet, pollUntil } from "./http-probe";
import { KubeApiError, KubeClient } from "@podidentity/kube";
import { collectionPathOf, identityManifest, parseManifest, type KubeObjectLike } from "./manifests";

/** A directory (outside the private namespaces, e.g. under /tmp) to copy each cluster's component logs to on close. */
export const KEEP_LOGS_ENV = "PODIDENTITY_E2E_KEEP_LOGS";

const MIC_PROBE_PORT = 8080;
const MIC_METRICS_PORT = 8888;

/** The Lease holder identity of MIC replica `i`. */
export const micInstance = (i: number): string => `podidentity-mic-${i}`;
const NMI_PROBE_PORT = 8085;

export interface ClusterIdentity {
  azure: UserAssignedIdentity;
  /** The AzureIdentity's name in Kubernetes and the binding's selector. */
  name: string;
  namespace: string;
  selector: string;
}

interface ClusterParts {
  options: Required<E2eClusterOptions>;
  cloud: AzureCloud;
  topology: Topology;
  kube: KubeApiServer;
  admin: KubeClient;
  arm: ArmServer;
  entra: EntraServer;
  vault: KeyVaultServer;
  scaleSet: ComputeResource;
  assigned: AssignedIdentityWatch;
  workDir: string;
  paths: E2eCluster["paths"];
}

export class E2eCluster {
  readonly options: Required<E2eClusterOptions>;
  readonly cloud: AzureCloud;
  readonly topology: Topology;
  readonly kube: KubeApiServer;
  readonly admin: KubeClient;
  readonly arm: ArmServer;
  readonly entra: EntraServer;
  readonly vault: KeyVaultServer;
  readonly scaleSet: ComputeResource;
  readonly imds = new Map<string, ImdsServer>();
  /** The NMI running (or last run) on each node. */
  readonly nmi = new Map<string, ComponentProcess>();
  /** Every NMI instance started on each node, oldest first (the last one is `nmi.get(node)`); their logs are kept. */
  readonly nmiInstances = new Map<string, ComponentProcess[]>();
  /** The NMI DaemonSet object (`deploy/podidentity-standard.yaml`'s) in the API server, as created at start. */
  readonly nmiDaemonSet: { namespace: string; name: string };
  /** The Pod object of the NMI process on each node (owned by the DaemonSet, as the DaemonSet controller makes it). */
  readonly #nmiPods = new Map<string, string>();
  /** MIC replicas, in the order started (replica i is Lease instance `podidentity-mic-<i>`). */
  readonly mics: ComponentProcess[] = [];
  readonly assigned: AssignedIdentityWatch;
  readonly workDir: string;
  readonly paths: { ca: string; adminKubeconfig: string; micKubeconfig: string; nmiKubeconfig: string; azureJson: string };
  /** Where each step of `start()` took how long (ms), for the demo. */
  readonly startTimings: { step: string; ms: number }[] = [];
  #closed = false;

  private constructor(parts: ClusterParts) {
    this.options = parts.options;
    this.cloud = parts.cloud;
    this.topology = parts.topology;
    this.kube = parts.kube;
    this.admin = parts.admin;
    this.arm = parts.arm;
    this.entra = parts.entra;
    this.vault = parts.vault;
    this.scaleSet = parts.scaleSet;
    this.assigned = parts.assigned;
    this.workDir = parts.workDir;
    this.paths = parts.paths;
    const rendered = nmiDaemonSet(resolveInstallOptions());
    this.nmiDaemonSet = { namespace: rendered.metadata!.namespace!, name: rendered.metadata!.name! };
  }

  /** Builds the cluster: Azure, Kubernetes, CRDs, nodes (each with its IMDS), MIC and NMI; resolves when all are ready. */
  static async start(input: E2eClusterOptions = {}): Promise<E2eCluster> {
    const options = { ...DEFAULT_E2E_CLUSTER_OPTIONS, ...input } as Required<E2eClusterOptions>;
    const info = privateNetnsInfo();
    if (!info) throw new Error("E2eCluster.start: not inside a private network namespace; re-run the program with runInPrivateNetns() from @podidentity/testbed");
    const timings: { step: string; ms: number }[] = [];
    const timed = async <T>(step: string, fn: () => Promise<T>): Promise<T> => {
      const t0 = performance.now();
      const value = await fn();
      timings.push({ step, ms: performance.now() - t0 });
      return value;
    };
    const workDir = await mkdtemp(join(info.filesDir, "e2e-"));
    const cloud = await AzureCloud.create();
    const topology = await Topology.create({ caPem: cloud.ca.certPem });
    const cleanupOnFailure: (() => Promise<unknown>)[] = [() => topology.close(), () => cloud.close(), () => rm(workDir, { recursive: true, force: true })];
    try {
      const tokens: Record<string, string> = {};
      const tokenOf: Record<keyof typeof CLUSTER_USERS, string> = { admin: "", mic: "", nmi: "", kubelet: "" };
      for (const [role, user] of Object.entries(CLUSTER_USERS) as [keyof typeof CLUSTER_USERS, string][]) {
        const token = `${role}-${randomBytes(12).toString("hex")}`;
        tokens[token] = user;
        tokenOf[role] = token;
      }
      const kube = new KubeApiServer({ host: topology.infraAddress, port: 6443, tls: cloud.ca, tokens });
      await timed("kube", () => kube.start());
      cleanupOnFailure.unshift(() => kube.close());
      await topology.registerInKube({ url: kube.url, token: tokenOf.kubelet, caPem: cloud.ca.certPem });
      const admin = KubeClient.fromKubeconfig(renderKubeconfig({ server: kube.url, caPem: cloud.ca.certPem, token: tokenOf.admin }), { userAgent: "kubectl" });

      const { arm, entra, vault } = await timed("azure", async () => {
        const [armHost, entraHost, vaultHost] = [
          await topology.addService(["management.azure.com"]),
          await topology.addService(["login.microsoftonline.com"]),
          await topology.addService([`${options.vaultName}.vault.azure.net`]),
        ];
        const [arm, entra, vault] = await Promise.all([
          cloud.startArm({ host: armHost, port: 443, operationDurationMs: options.operationDurationMs, propagationDelayMs: options.propagationDelayMs }),
          cloud.startEntra({ host: entraHost, port: 443 }),
          cloud.startKeyVault(options.vaultName, { host: vaultHost, port: 443 }),
        ]);
        return { arm, entra, vault };
      });
      const scaleSet = cloud.addScaleSet(options.scaleSetName);

      // CRDs first, as `kubectl apply -f deploy/crds/crds.yaml` would.
      await timed("crds", async () => {
        for (const crd of customResourceDefinitions()) await admin.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd as unknown as KubeObjectLike);
      });

      // Files the components read: kubeconfigs (one user each), azure.json with MIC's service principal, the CA.
      const secret = randomBytes(24).toString("base64url");
      const micPrincipal = cloud.addServicePrincipal({ displayName: "podidentity-mic", secrets: [secret] });
      const paths = {
        ca: join(workDir, "ca.pem"),
        adminKubeconfig: join(workDir, "admin.kubeconfig"),
        micKubeconfig: join(workDir, "mic.kubeconfig"),
        nmiKubeconfig: join(workDir, "nmi.kubeconfig"),
        azureJson: join(workDir, "azure.json"),
      };
      await writeFile(paths.ca, cloud.ca.certPem, { mode: 0o644 });
      await kube.writeKubeconfig(paths.adminKubeconfig, { user: CLUSTER_USERS.admin });
      await kube.writeKubeconfig(paths.micKubeconfig, { user: CLUSTER_USERS.mic });
      await kube.writeKubeconfig(paths.nmiKubeconfig, { user: CLUSTER_USERS.nmi });
      const azureJson = {
        cloud: "AzurePublicCloud",
        tenantId: cloud.tenantId,
        aadClientId: micPrincipal.appId,
        aadClientSecret: secret,
        subscriptionId: cloud.subscriptionId,
        resourceGroup: cloud.resourceGroup,
        vmType: "vmss",
        useManagedIdentityExtension: false,
      };
      await writeFile(paths.azureJson, JSON.stringify(azureJson, null, 2) + "\n", { mode: 0o600 });

      // NMI's DaemonSet as the installer renders it (selector, template, tolerations): NMI reads it on SIGTERM.
      await timed("daemonset", async () => {
        const ds = nmiDaemonSet(resolveInstallOptions());
        await admin.create(`/apis/apps/v1/namespaces/${ds.metadata!.namespace!}/daemonsets`, ds as unknown as KubeObjectLike);
      });

      const assigned = await AssignedIdentityWatch.start(admin);
      const cluster = new E2eCluster({ options, cloud, topology, kube, admin, arm, entra, vault, scaleSet, assigned, workDir, paths });
      cluster.startTimings.push(...timings);
      cleanupOnFailure.length = 0;
      try {
        await cluster.#timed("nodes", async () => {
          for (let i = 0; i < options.nodeCount; i++) await cluster.#addNode(i);
        });
        if (options.startMic) await cluster.#timed("mic", () => cluster.startMic());
        if (options.startNmi) await cluster.#timed("nmi", () => Promise.all(cluster.nodes.map((n) => cluster.startNmi(n.name))));
      } catch (error) {
        await cluster.close();
        throw error;
      }
      return cluster;
    } catch (error) {
      for (const fn of cleanupOnFailure) await fn().catch(() => undefined);
      throw error;
    }
  }

  async #timed<T>(step: string, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    const value = await fn();
    this.startTimings.push({ step, ms: performance.now() - t0 });
    return value;
  }

  async #addNode(i: number): Promise<TopologyNode> {
    const name = `${this.scaleSet.name}${String(i).padStart(6, "0")}`;
    const node = await this.topology.addNode(name, {
      providerId: azureProviderId({ subscriptionId: this.cloud.subscriptionId, resourceGroup: this.cloud.resourceGroup, scaleSet: this.scaleSet.name, instanceId: i }),
      labels: { "kubernetes.azure.com/agentpool": "nodepool1", "kubernetes.io/os": "linux" },
      taints: this.options.startupTaint ? [NMI_NOT_READY_TAINT] : [],
      ...(this.options.routeLocalnet !== "inherit" && { routeLocalnet: this.options.routeLocalnet }),
    });
    const imds = await this.cloud.startImds(name, this.scaleSet, { host: this.topology.infraAddress });
    await this.topology.setUpstreamImds(name, imds.url);
    this.imds.set(name, imds);
    return node;
  }

  get nodes(): TopologyNode[] {
    return this.topology.nodes;
  }

  node(i = 0): TopologyNode {
    const n = this.topology.nodes[i];
    if (!n) throw new Error(`E2eCluster: no node ${i}`);
    return n;
  }

  /** `https://<vault>.vault.azure.net` as pods see it. */
  get vaultUrl(): string {
    return `https://${this.options.vaultName}.vault.azure.net`;
  }

  #log(name: string): string | undefined {
    return this.options.logToFiles ? join(this.workDir, `${name}.log`) : undefined;
  }

  /**
   * Starts a MIC replica in node 0's network namespace (as a hostNetwork pod would run), with azure.json and the
   * real Azure host names, which that namespace resolves to the emulators. Replica i is Lease instance
   * `podidentity-mic-<i>` with probe port 8080 + i (one more from replica 5 on, past NMI's 8085 in the same
   * namespace) and metrics port 8888 + i. Resolves once it leads, or — with
   * `standby` — once it is ready and not leading.
   */
  async startMic(extraArgs: readonly string[] = [], options: { standby?: boolean } = {}): Promise<ComponentProcess> {
    const node = this.node(0);
    const i = this.mics.length;
    const probePort = MIC_PROBE_PORT + i + (MIC_PROBE_PORT + i >= NMI_PROBE_PORT ? 1 : 0);
    const args = [
      "--kubeconfig", this.paths.micKubeconfig,
      "--cloudconfig", this.paths.azureJson,
      "--arm-endpoint", "https://management.azure.com",
      "--authority-host", "https://login.microsoftonline.com",
      // The Lease as deploy/podidentity-standard.yaml names it, so its RBAC (resourceNames) is what the suite checks.
      "--leader-election-namespace", "kube-system",
      "--leader-election-name", INSTALL_NAMES.leaseName,
      "--leader-election-instance", micInstance(i),
      "--http-probe-port", String(probePort),
      "--prometheus-port", String(MIC_METRICS_PORT + i),
      ...this.options.micArgs,
      ...extraArgs,
    ];
    const env = { NODE_EXTRA_CA_CERTS: this.paths.ca };
    const run = this.options.runner({ component: "mic", instance: `mic-${i}`, node, args, env });
    const child = this.topology.spawnInNode(node.name, run.command, run.args, { cleanEnv: true, env });
    const mic = new ComponentProcess(i === 0 ? "mic" : `mic-${i}`, child, this.#log(i === 0 ? "mic" : `mic-${i}`));
    this.mics.push(mic);
    const wanted = options.standby ? "standby (/readyz 200, /healthz Not Active)" : "leading (/healthz Active)";
    await Promise.race([
      pollUntil(`MIC ${micInstance(i)} ${wanted}`, async () => {
        const health = await httpGet(`http://${node.address}:${probePort}/healthz`);
        if (!options.standby) return health.status === 200 && /^Active/m.test(health.body) ? true : undefined;
        const ready = await httpGet(`http://${node.address}:${probePort}/readyz`);
        return ready.status === 200 && /Not Active/.test(health.body) ? true : undefined;
      }, this.options.readyTimeoutMs),
      mic.exited.then(({ code, signal }) => {
        throw new Error(`MIC ${micInstance(i)} exited (${code ?? signal}) while starting:\n${mic.tail()}`);
      }),
    ]);
    return mic;
  }

  /** The first MIC replica started. */
  get mic(): ComponentProcess | undefined {
    return this.mics[0];
  }

  /**
   * Starts NMI in `nodeName`'s network namespace (`--node`, its real iptables rules) with the environment the
   * rendered DaemonSet gives it (NODE_NAME, POD_NAME, POD_NAMESPACE) and a Pod object owned by the DaemonSet, as
   * the DaemonSet controller would create it; resolves once /readyz is 200. A restart is a new instance (new pod
   * name); the earlier instances stay in `nmiInstances` and their logs in `nmi-<node>.log`.
   */
  async startNmi(nodeName: string, extraArgs: readonly string[] = []): Promise<ComponentProcess> {
    if (this.nmi.get(nodeName)?.running) throw new Error(`E2eCluster.startNmi: NMI is running on ${nodeName}`);
    const node = this.topology.node(nodeName);
    const podName = await this.#createNmiPod(node);
    const args = ["--node", nodeName, "--kubeconfig", this.paths.nmiKubeconfig, "--log-level", "debug", "--http-probe-port", String(NMI_PROBE_PORT), ...this.options.nmiArgs, ...extraArgs];
    const env = { NODE_EXTRA_CA_CERTS: this.paths.ca, NODE_NAME: nodeName, POD_NAME: podName, POD_NAMESPACE: this.nmiDaemonSet.namespace };
    const run = this.options.runner({ component: "nmi", instance: `nmi@${nodeName}-${this.nmiInstances.get(nodeName)?.length ?? 0}`, node, args, env });
    const child = this.topology.spawnInNode(nodeName, run.command, run.args, { cleanEnv: true, env, readOnlyProcSys: this.options.nmiReadOnlyProcSys });
    const nmi = new ComponentProcess(`nmi@${nodeName}`, child, this.#log(`nmi-${nodeName}`));
    this.nmi.set(nodeName, nmi);
    this.nmiInstances.set(nodeName, [...(this.nmiInstances.get(nodeName) ?? []), nmi]);
    await Promise.race([
      pollUntil(`NMI on ${nodeName} ready`, async () => ((await httpGet(`http://${node.address}:${NMI_PROBE_PORT}/readyz`)).status === 200 ? true : undefined), this.options.readyTimeoutMs),
      nmi.exited.then(({ code, signal }) => {
        throw new Error(`NMI on ${nodeName} exited (${code ?? signal}) while starting:\n${nmi.tail()}`);
      }),
    ]);
    return nmi;
  }

  /**
   * SIGTERM to a node's NMI (it keeps its rules unless its DaemonSet is gone or no longer targets the node, and
   * exits), then its Pod object is deleted as the kubelet would; resolves with its exit.
   */
  async stopNmi(nodeName: string, signal: NodeJS.Signals = "SIGTERM"): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const nmi = this.nmi.get(nodeName);
    if (!nmi) throw new Error(`E2eCluster.stopNmi: no NMI on ${nodeName}`);
    const exit = await nmi.stop(signal);
    await this.#deleteNmiPod(nodeName);
    return exit;
  }

  /** `/apis/apps/v1/namespaces/<ns>/daemonsets/<name>` of NMI's DaemonSet (delete it to uninstall NMI). */
  get nmiDaemonSetPath(): string {
    return `/apis/apps/v1/namespaces/${this.nmiDaemonSet.namespace}/daemonsets/${this.nmiDaemonSet.name}`;
  }

  /** NMI's Pod object on `node`: the DaemonSet's template, owned by the DaemonSet, Running with the node's address. */
  async #createNmiPod(node: TopologyNode): Promise<string> {
    await this.#deleteNmiPod(node.name);
    const ds = await this.admin.get<KubeObjectLike & { spec?: { template?: { metadata?: { labels?: Record<string, string> }; spec?: Record<string, unknown> } } }>(this.nmiDaemonSetPath).catch((error: unknown) => {
      // Deleted by a test (an uninstall): the pod is still this DaemonSet's by name, as a leftover pod would be.
      if (error instanceof KubeApiError && error.statusCode === 404) return undefined;
      throw error;
    });
    const name = `${this.nmiDaemonSet.name}-${randomBytes(3).toString("hex").slice(0, 5)}`;
    const path = `/api/v1/namespaces/${this.nmiDaemonSet.namespace}/pods`;
    await this.admin.create(path, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name,
        namespace: this.nmiDaemonSet.namespace,
        labels: ds?.spec?.template?.metadata?.labels ?? {},
        ownerReferences: [{ apiVersion: "apps/v1", kind: "DaemonSet", name: this.nmiDaemonSet.name, uid: String(ds?.metadata?.["uid"] ?? "00000000-0000-0000-0000-000000000000"), controller: true, blockOwnerDeletion: true }],
      },
      spec: { ...(ds?.spec?.template?.spec ?? { hostNetwork: true, containers: [{ name: "nmi", image: "podidentity-nmi" }] }), nodeName: node.name },
    });
    await this.admin.patch(`${path}/${name}/status`, { status: { phase: "Running", podIP: node.address, podIPs: [{ ip: node.address }], hostIP: node.address } });
    this.#nmiPods.set(node.name, name);
    return name;
  }

  async #deleteNmiPod(nodeName: string): Promise<void> {
    const name = this.#nmiPods.get(nodeName);
    if (name === undefined) return;
    this.#nmiPods.delete(nodeName);
    await this.admin.delete(`/api/v1/namespaces/${this.nmiDaemonSet.namespace}/pods/${name}`).catch((error: unknown) => {
      if (!(error instanceof KubeApiError && error.statusCode === 404)) throw error;
    });
  }

  /** Creates the namespace unless it exists. */
  async ensureNamespace(name: string): Promise<void> {
    try {
      await this.admin.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name } });
    } catch (error) {
      if (!(error instanceof KubeApiError && error.statusCode === 409)) throw error;
    }
  }

  /** Creates every object of a YAML manifest (as `kubectl create -f`), in `namespace` unless the object names one. */
  async apply(yamlText: string, namespace = "default"): Promise<KubeObjectLike[]> {
    const created: KubeObjectLike[] = [];
    for (const object of parseManifest(yamlText)) created.push(await this.admin.create(collectionPathOf(object, namespace), object));
    return created;
  }

  async deleteObject(object: KubeObjectLike, namespace = "default"): Promise<void> {
    await this.admin.delete(`${collectionPathOf(object, namespace)}/${object.metadata?.name ?? ""}`);
  }

  /**
   * A user-assigned identity in Azure (the `az identity create` step), optionally with `get` on the vault's
   * secrets. Not yet in Kubernetes: `bindIdentity` applies its manifests.
   */
  createIdentity(name: string, options: { secretGet?: boolean } = {}): UserAssignedIdentity {
    const identity = this.cloud.createUserAssignedIdentity(name);
    if (options.secretGet) this.vault.setAccessPolicy(identity.principalId, ["get"]);
    return identity;
  }

  /** Stores a secret in the vault; returns its version. */
  grantSecret(name: string, value: string): string {
    return this.vault.putSecret(name, value);
  }

  /** Applies the AzureIdentity + AzureIdentityBinding manifests (legacy keys by default) for `identity`. */
  async bindIdentity(identity: UserAssignedIdentity, options: { name?: string; namespace?: string; selector: string; legacyKeys?: boolean }): Promise<ClusterIdentity> {
    const name = options.name ?? identity.name;
    const namespace = options.namespace ?? "default";
    await this.ensureNamespace(namespace);
    await this.apply(identityManifest({ name, namespace, resourceId: identity.id, clientId: identity.clientId, selector: options.selector, legacyKeys: options.legacyKeys }), namespace);
    return { azure: identity, name, namespace, selector: options.selector };
  }

  /** Adds a pod and waits until it runs (its node must have no untolerated taint). */
  async addPod(name: string, options: AddPodOptions & { waitRunning?: boolean } = {}): Promise<TopologyPod> {
    if (options.namespace) await this.ensureNamespace(options.namespace);
    const pod = await this.topology.addPod(name, options);
    if (options.waitRunning !== false) await pod.whenRunning(this.options.readyTimeoutMs);
    return pod;
  }

  /**
   * `kubectl delete pod` and its kubelet: the pod terminates gracefully (SIGTERM, its grace period — `gracePeriodSeconds`,
   * else 30 s, at the testbed's time scale — then SIGKILL) and is gone when this resolves.
   */
  removePod(pod: TopologyPod, options: { gracePeriodSeconds?: number } = {}): Promise<void> {
    return this.topology.removePod(pod.name, pod.namespace, options);
  }

  /** Changes a pod's `aadpodidbinding` label in Kubernetes (`kubectl label pod … aadpodidbinding=… --overwrite`). */
  async relabelPod(pod: TopologyPod, selector: string | null): Promise<void> {
    await this.admin.patch(`/api/v1/namespaces/${pod.namespace}/pods/${pod.name}`, { metadata: { labels: { aadpodidbinding: selector } } });
  }

  /**
   * Runs a command in a pod as a container would: a clean environment (no endpoint override, no proxy), the
   * testbed CA trusted, the real Azure host names resolving to the emulators.
   */
  runInPod(pod: TopologyPod, command: string, args: readonly string[] = [], options: RunInNetnsOptions = {}): Promise<ProcessResult> {
    return this.topology.runInPod(pod, command, args, { cleanEnv: true, ...options, env: { HOME: this.workDir, ...options.env } });
  }

  spawnInPod(pod: TopologyPod, command: string, args: readonly string[] = [], options: SpawnInNetnsOptions = {}): ReturnType<Topology["spawnInPod"]> {
    return this.topology.spawnInPod(pod, command, args, { cleanEnv: true, ...options, env: { HOME: this.workDir, ...options.env } });
  }

  runInNode(node: TopologyNode, command: string, args: readonly string[] = [], options: RunInNetnsOptions = {}): Promise<ProcessResult> {
    return this.topology.runInNode(node.name, command, args, { cleanEnv: true, ...options, env: { HOME: this.workDir, ...options.env } });
  }

  /**
   * The sum of one NMI counter's samples on `node`, scraped from its /metrics (port 9090 in the node's namespace),
   * over the samples `keep` accepts (all by default). Cumulative over the NMI's life: compare before and after.
   */
  async nmiCounter(node: TopologyNode, name: string, keep: (sample: string) => boolean = () => true): Promise<number> {
    const metrics = await this.runInNode(node, "curl", ["-sS", "--max-time", "5", "http://127.0.0.1:9090/metrics"]);
    if (metrics.code !== 0) throw new Error(`scraping NMI's /metrics on ${node.name} failed (curl exit ${metrics.code}): ${metrics.stderr}`);
    return metrics.stdout
      .split("\n")
      .filter((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && keep(l))
      .reduce((sum, l) => sum + Number(l.split(" ").at(-1)), 0);
  }

  /**
   * NMI's log of the requests it answered from `address` (its `request answered` lines: route, status, code,
   * remote), across every NMI instance on the node, oldest first: a restart does not hide earlier answers.
   */
  nmiRequestsFrom(address: string, nodeName = this.node(0).name): Record<string, unknown>[] {
    return (this.nmiInstances.get(nodeName) ?? []).flatMap((nmi) => nmi.logs("request answered").filter((l) => String(l["remote"]).replace(/^::ffff:/, "") === address));
  }

  /**
   * Waits for NMI's log line about a request from `pod`'s address (its node's current NMI) answered after `since`
   * (performance.now()), matching `route`/`status`/`code` when given: proof the request went through NMI.
   */
  async nmiAnswered(pod: TopologyPod, match: { route?: string; status?: number; code?: string; since?: number } = {}, timeoutMs = 5_000): Promise<Record<string, unknown>> {
    const nodeName = pod.node?.name;
    const nmi = nodeName ? this.nmi.get(nodeName) : undefined;
    if (!nmi || !pod.ip) throw new Error(`E2eCluster.nmiAnswered: pod ${pod.key} has no node with NMI`);
    const line = await nmi.waitForLine(
      `"request answered" from ${pod.ip}${match.route ? ` route ${match.route}` : ""}${match.status ? ` status ${match.status}` : ""}`,
      (l) =>
        l.at >= (match.since ?? 0) &&
        l.json?.["msg"] === "request answered" &&
        String(l.json["remote"]).replace(/^::ffff:/, "") === pod.ip &&
        (match.route === undefined || l.json["route"] === match.route) &&
        (match.status === undefined || l.json["status"] === match.status) &&
        (match.code === undefined || l.json["code"] === match.code),
      timeoutMs,
    );
    return line.json!;
  }

  /** Stops NMI (its DaemonSet still targets the nodes, so it keeps its rules) and MIC, then every namespace, server and file. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.assigned.close();
    await Promise.all([...this.nmi.values()].map((n) => n.stop()));
    await Promise.all(this.mics.map((m) => m.stop()));
    await this.topology.close().catch(() => undefined);
    await this.kube.close().catch(() => undefined);
    await this.admin.close();
    await this.cloud.close().catch(() => undefined);
    // The work directory is on the private namespaces' tmpfs; to read the components' logs afterwards, copy them out.
    const keepLogs = process.env[KEEP_LOGS_ENV];
    if (keepLogs) await cp(this.workDir, join(keepLogs, basename(this.workDir)), { recursive: true, filter: (src) => !/(\.kubeconfig|azure\.json)$|\/az-[^/]*$/.test(src) }).catch(() => undefined);
    await rm(this.workDir, { recursive: true, force: true });
  }
}
