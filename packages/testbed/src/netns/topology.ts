/**
 * Nodes and pods as Linux network namespaces, inside the private network namespace the harness entered
 * (`spawnInPrivateNetns`). The layout mirrors an AKS cluster with kubenet:
 *
 *   infra (this process's namespace)   bridge `podid-vnet` 10.213.0.1/16 — the emulators and the Kubernetes API
 *                                      listen here; each `addService` adds an address for one set of host names
 *   node i  (`podid-<run>-n<i>`)       eth0 10.213.0.(4+i)/16 on the VNet bridge, default route to infra;
 *                                      bridge `cbr0` 10.244.i.1/24 for its pods; forwards between them
 *   pod     (`podid-<run>-p<k>`)       eth0 10.244.i.(10+k)/24 on the node's cbr0, default route via the node,
 *                                      so its packets to 169.254.169.254 cross the node's PREROUTING (NMI's DNAT)
 *
 * 169.254.169.254:80 answers per node, as Azure's IMDS does: in the infra namespace, packets to it from a node's
 * address or pod range are DNATed to that node's `ImdsServer` (`setUpstreamImds`). Processes see the real Azure
 * host names through a hosts file bind-mounted in their own mount namespace, and trust the testbed CA through
 * the usual environment variables.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { constants } from "node:os";
import { join } from "node:path";
import { NetnsError } from "./errors";
import { assertPrivateNamespace, createNodeNetwork, createPodNetwork, deleteNetns, ip, listLinks, listNetns, setRouteLocalnet } from "./netns-commands";
import type { AddNodeOptions, AddPodOptions } from "./topology-members";
import { TopologyNode, TopologyPod } from "./topology-members";
import { runCommand } from "./exec";
import type { KubeConnection } from "./kube-client";
import type { PodObjectInput, Taint } from "./kube-objects";
import { untoleratedTaints } from "./kube-objects";
import { KubeRegistrar } from "./kube-registrar";
import { privateNetnsInfo } from "./private-netns";
import { DEFAULT_KUBE_API_SERVER_OPTIONS } from "../kube/kube-api-server";
import type { ProcessExit, ProcessResult, RunInNetnsOptions, SpawnInNetnsOptions } from "./process-runner";
import { caEnvironment, hostsFileText, ProcessTracker, RESOLV_CONF_TEXT, runToCompletion, spawnInNetns, writeNetnsFile } from "./process-runner";

export const DEFAULT_TOPOLOGY_OPTIONS = {
  /** Every namespace and interface name starts with this (namespaces: `<prefix><runId>-…`). */
  namePrefix: "podid-",
  /** The infrastructure address on the VNet bridge; the VNet is its /16. */
  infraAddress: "10.213.0.1",
  /** Node i gets `<vnet>.0.(firstNodeHost + i)`, as Azure hands out .4 first. */
  firstNodeHost: 4,
  /** Service addresses (`addService`) are `<vnet>.1.1`, `.1.2`, … */
  serviceThirdOctet: 1,
  /** Node i's pod range is `<podNetwork>.i.0/24`, its bridge `.1`. */
  podNetwork: "10.244",
  /** Pods get `.firstPodHost`, `.firstPodHost + 1`, … of their node's range. */
  firstPodHost: 10,
  metadataAddress: "169.254.169.254",
  metadataPort: 80,
  /** SIGTERM → SIGKILL grace when stopping processes outside a pod deletion (close, pods without Kubernetes). */
  stopGraceMs: 2_000,
  /**
   * A deleted pod's processes get SIGKILL after its grace period (the API's `deletionGracePeriodSeconds`) times
   * this, in ms: the same scale as the testbed API server's (`DEFAULT_KUBE_API_SERVER_OPTIONS`).
   */
  podGracePeriodMsPerSecond: DEFAULT_KUBE_API_SERVER_OPTIONS.podGracePeriodMsPerSecond as number,
  /** Default deadline of `runInPod` / `runInNode`. */
  runTimeoutMs: 30_000,
  maxNodes: 200,
  maxPodsPerNode: 240,
} as const;

export interface TopologyOptions {
  /** PEM of the CA processes should trust (the testbed CA's `certPem`). */
  caPem?: string;
  /** Register nodes and pods in this Kubernetes API from the start (or call `registerInKube` later). */
  kube?: KubeConnection;
  /** Clock for the timestamps written into Node/Pod status. */
  now?: () => Date;
  stopGraceMs?: number;
  runTimeoutMs?: number;
  podGracePeriodMsPerSecond?: number;
  /** Errors of the background node watch (it retries by itself); default: ignored. */
  onBackgroundError?: (err: unknown) => void;
}


export class Topology {
  readonly runId: string;
  /** `podid-<runId>-`: the start of every namespace name of this topology. */
  readonly netnsPrefix: string;
  readonly infraAddress: string;
  readonly runDir: string;
  readonly #opts: { stopGraceMs: number; runTimeoutMs: number; podGracePeriodMsPerSecond: number; now: () => Date; onBackgroundError: (err: unknown) => void };
  readonly #caEnv: Record<string, string>;
  readonly #nodes = new Map<string, TopologyNode>();
  readonly #pods = new Map<string, TopologyPod>();
  readonly #services = new Map<string, string[]>();
  readonly #procs = new ProcessTracker();
  readonly #resolvFile: string;
  #kube: KubeRegistrar | undefined;
  #nextPodIndex = 0;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(runId: string, runDir: string, caFile: string | undefined, options: TopologyOptions) {
    this.runId = runId;
    this.netnsPrefix = `${DEFAULT_TOPOLOGY_OPTIONS.namePrefix}${runId}-`;
    this.infraAddress = DEFAULT_TOPOLOGY_OPTIONS.infraAddress;
    this.runDir = runDir;
    this.#resolvFile = join(runDir, "resolv.conf");
    this.#caEnv = caEnvironment(caFile);
    this.#opts = {
      stopGraceMs: options.stopGraceMs ?? DEFAULT_TOPOLOGY_OPTIONS.stopGraceMs,
      runTimeoutMs: options.runTimeoutMs ?? DEFAULT_TOPOLOGY_OPTIONS.runTimeoutMs,
      podGracePeriodMsPerSecond: options.podGracePeriodMsPerSecond ?? DEFAULT_TOPOLOGY_OPTIONS.podGracePeriodMsPerSecond,
      now: options.now ?? (() => new Date()),
      onBackgroundError: options.onBackgroundError ?? (() => undefined),
    };
  }

  static #validate(options: TopologyOptions): void {
    for (const key of ["stopGraceMs", "runTimeoutMs", "podGracePeriodMsPerSecond"] as const) {
      const v = options[key];
      if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw new NetnsError("INVALID_ARGUMENT", `Topology: ${key} must be a non-negative integer (ms), got ${v}`);
    }
    if (options.kube && !URL.canParse(options.kube.url)) throw new NetnsError("INVALID_ARGUMENT", `Topology: kube.url must be a URL such as https://10.213.0.1:6443, got "${options.kube.url}"`);
  }

  /**
   * Builds the infrastructure side in the current network namespace, which must be a private one made by
   * `spawnInPrivateNetns` (checked: it may hold no interface but loopback and ours). Leftovers of an earlier
   * topology in this namespace are removed first.
   */
  static async create(options: TopologyOptions = {}): Promise<Topology> {
    Topology.#validate(options);
    const info = privateNetnsInfo();
    if (!info) {
      throw new NetnsError(
        "NOT_IN_PRIVATE_NETNS",
        "Topology.create: this process is not inside a private network namespace; start it with spawnInPrivateNetns()/runInPrivateNetns(), which never touches the machine's network",
      );
    }
    await assertPrivateNamespace(DEFAULT_TOPOLOGY_OPTIONS.namePrefix);
    await Topology.cleanupStale(DEFAULT_TOPOLOGY_OPTIONS.namePrefix);
    const runDir = await mkdtemp(join(info.filesDir, `${DEFAULT_TOPOLOGY_OPTIONS.namePrefix}${info.runId}-`));
    let caFile: string | undefined;
    if (options.caPem) {
      caFile = join(runDir, "ca.pem");
      await writeFile(caFile, options.caPem, { mode: 0o644 });
    }
    await writeFile(join(runDir, "resolv.conf"), RESOLV_CONF_TEXT, { mode: 0o644 });
    const topology = new Topology(info.runId, runDir, caFile, options);
    const d = DEFAULT_TOPOLOGY_OPTIONS;
    await ip(["link", "add", VNET_BRIDGE, "type", "bridge"]);
    await ip(["addr", "add", `${d.infraAddress}/16`, "dev", VNET_BRIDGE]);
    await ip(["link", "set", VNET_BRIDGE, "up"]);
    await runCommand("iptables", ["-t", "nat", "-N", IMDS_CHAIN]);
    await runCommand("iptables", ["-t", "nat", "-A", "PREROUTING", "-j", IMDS_CHAIN]);
    if (options.kube) await topology.registerInKube(options.kube);
    return topology;
  }

  /**
   * Removes namespaces whose name starts with `prefix` (killing the processes in them) and, inside a private
   * network namespace only, interfaces and the IMDS chain of that prefix. Returns what was removed. Inside the
   * harness's private namespaces nothing of another run is visible, so this only ever meets this run's leftovers.
   */
  static async cleanupStale(prefix: string = DEFAULT_TOPOLOGY_OPTIONS.namePrefix): Promise<{ namespaces: string[]; links: string[] }> {
    if (!prefix.startsWith(DEFAULT_TOPOLOGY_OPTIONS.namePrefix)) {
      throw new NetnsError("INVALID_ARGUMENT", `Topology.cleanupStale: prefix must start with "${DEFAULT_TOPOLOGY_OPTIONS.namePrefix}", got "${prefix}"`);
    }
    const namespaces = (await listNetns()).filter((n) => n.startsWith(prefix));
    for (const ns of namespaces) await deleteNetns(ns);
    const links: string[] = [];
    if (privateNetnsInfo()) {
      for (const link of await listLinks()) {
        if (!link.startsWith(prefix)) continue;
        await ip(["link", "del", link]).catch(() => undefined); // a veth goes with its peer's namespace
        links.push(link);
      }
      if (prefix === DEFAULT_TOPOLOGY_OPTIONS.namePrefix) {
        await runCommand("iptables", ["-t", "nat", "-D", "PREROUTING", "-j", IMDS_CHAIN]).catch(() => undefined);
        await runCommand("iptables", ["-t", "nat", "-F", IMDS_CHAIN]).catch(() => undefined);
        await runCommand("iptables", ["-t", "nat", "-X", IMDS_CHAIN]).catch(() => undefined);
      }
    }
    return { namespaces, links };
  }

  get nodes(): TopologyNode[] {
    return [...this.#nodes.values()];
  }

  get pods(): TopologyPod[] {
    return [...this.#pods.values()];
  }

  node(name: string): TopologyNode {
    const n = this.#nodes.get(name);
    if (!n) throw new NetnsError("NOT_FOUND", `Topology: no node "${name}" (nodes: ${[...this.#nodes.keys()].join(", ") || "none"})`);
    return n;
  }

  pod(name: string, namespace = "default"): TopologyPod {
    const p = this.#pods.get(`${namespace}/${name}`);
    if (!p) throw new NetnsError("NOT_FOUND", `Topology: no pod "${namespace}/${name}"`);
    return p;
  }

  /** `{ NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE, SSL_CERT_FILE, CURL_CA_BUNDLE, … }` every process here gets. */
  get caEnv(): Record<string, string> {
    return { ...this.#caEnv };
  }

  // Mutations run one at a time: address allocation, interface names and Kubernetes writes must not interleave.
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(() => {
      if (this.#closed) throw new NetnsError("CLOSED", "Topology: already closed");
      return fn();
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Adds an address on the VNet for a set of host names (e.g. `["management.azure.com"]`) and maps them to it in
   * every hosts file; start the emulator on `{ host: <address>, port: 443 }`. Each HTTPS service needs its own
   * address since each listens on 443.
   */
  addService(hostNames: string[]): Promise<string> {
    return this.#serial(async () => {
      if (hostNames.length === 0) throw new NetnsError("INVALID_ARGUMENT", "Topology.addService: give at least one host name");
      const d = DEFAULT_TOPOLOGY_OPTIONS;
      const address = `${vnetPrefix()}.${d.serviceThirdOctet}.${this.#services.size + 1}`;
      await ip(["addr", "add", `${address}/16`, "dev", VNET_BRIDGE]);
      this.#services.set(address, [...hostNames]);
      await this.#rewriteHostsFiles();
      return address;
    });
  }

  /** Maps more host names to an existing address (the infra address, or one from `addService`). */
  mapHostNames(address: string, hostNames: string[]): Promise<void> {
    return this.#serial(async () => {
      this.#services.set(address, [...(this.#services.get(address) ?? []), ...hostNames]);
      await this.#rewriteHostsFiles();
    });
  }

  addNode(name: string, options: AddNodeOptions = {}): Promise<TopologyNode> {
    return this.#serial(async () => {
      const d = DEFAULT_TOPOLOGY_OPTIONS;
      if (this.#nodes.has(name)) throw new NetnsError("INVALID_ARGUMENT", `Topology.addNode: node "${name}" exists`);
      if (this.#nodes.size >= d.maxNodes) throw new NetnsError("INVALID_ARGUMENT", `Topology.addNode: at most ${d.maxNodes} nodes`);
      const index = this.#nodes.size;
      const netns = `${this.netnsPrefix}n${index}`;
      const hostsFile = join(this.runDir, `${netns}.hosts`);
      const node = new TopologyNode({
        name,
        index,
        netns,
        address: `${vnetPrefix()}.0.${d.firstNodeHost + index}`,
        podCidr: `${d.podNetwork}.${index}.0/24`,
        bridgeAddress: `${d.podNetwork}.${index}.1`,
        labels: { ...options.labels },
        providerId: options.providerId,
        files: { hostsFile, resolvFile: this.#resolvFile, caEnv: this.#caEnv },
        taints: [...(options.taints ?? [])],
        nextPodHost: d.firstPodHost,
      });
      await createNodeNetwork({ netns, infraVeth: `${d.namePrefix}n${index}`, vnetBridge: VNET_BRIDGE, nodeBridge: NODE_BRIDGE, address: node.address, bridgeAddress: node.bridgeAddress, infraAddress: this.infraAddress });
      if (options.routeLocalnet !== undefined) await setRouteLocalnet(netns, options.routeLocalnet);
      const inNode = (args: string[]): Promise<unknown> => ip(["-n", netns, ...args]);
      // the routes kubenet's route table gives the VNet: each node's pod range via that node
      await ip(["route", "add", node.podCidr, "via", node.address]);
      for (const other of this.#nodes.values()) {
        await inNode(["route", "add", other.podCidr, "via", other.address]);
        await ip(["-n", other.netns, "route", "add", node.podCidr, "via", node.address]);
      }
      await writeNetnsFile(hostsFile, this.#hostsText({ address: node.address, names: [name] }));
      this.#nodes.set(name, node);
      if (this.#kube) await this.#kube.registerNode(this.#nodeInput(node));
      await this.#schedule();
      return node;
    });
  }

  /**
   * Points this node's 169.254.169.254:80 at its IMDS (an `ImdsServer` listening in this namespace, e.g. on
   * `{ host: topology.infraAddress, port: 0 }`): packets from the node's address and pod range are DNATed to it.
   */
  setUpstreamImds(nodeName: string, target: { host: string; port: number } | { url: string } | string): Promise<void> {
    return this.#serial(async () => {
      const node = this.node(nodeName);
      const to = typeof target === "string" ? hostPortOf(target) : "url" in target ? hostPortOf(target.url) : target;
      const d = DEFAULT_TOPOLOGY_OPTIONS;
      const rules = (t: { host: string; port: number }): string[][] =>
        [`${node.address}/32`, node.podCidr].map((src) => ["-s", src, "-d", `${d.metadataAddress}/32`, "-p", "tcp", "--dport", String(d.metadataPort), "-j", "DNAT", "--to-destination", `${t.host}:${t.port}`]);
      if (node.upstreamImds) for (const r of rules(node.upstreamImds)) await runCommand("iptables", ["-t", "nat", "-D", IMDS_CHAIN, ...r]);
      for (const r of rules(to)) await runCommand("iptables", ["-t", "nat", "-A", IMDS_CHAIN, ...r]);
      node.upstreamImds = to;
    });
  }

  /**
   * Sets a node's taints. With Kubernetes attached this patches the Node object (and the watch brings the change
   * back, as it does for changes others make); pods waiting for the node are placed when nothing blocks them.
   */
  setNodeTaints(nodeName: string, taints: Taint[]): Promise<void> {
    return this.#serial(async () => {
      const node = this.node(nodeName);
      if (this.#kube) await this.#kube.setNodeTaints(node.name, taints);
      node.taints = [...taints];
      await this.#schedule();
    });
  }

  /**
   * Adds a pod. It is placed at once when a node can take it (taints tolerated, `node` honoured), else it stays
   * Pending (without a node in Kubernetes) until one can; `whenRunning()` waits for that. Placing creates its
   * namespace and address (none for hostNetwork pods) and reports it Running in Kubernetes.
   */
  addPod(name: string, options: AddPodOptions = {}): Promise<TopologyPod> {
    return this.#serial(async () => {
      const pod = new TopologyPod(name, {
        namespace: options.namespace ?? "default",
        labels: { ...options.labels },
        annotations: { ...options.annotations },
        hostNetwork: options.hostNetwork ?? false,
        tolerations: [...(options.tolerations ?? [])],
        node: options.node,
      });
      if (this.#pods.has(pod.key)) throw new NetnsError("INVALID_ARGUMENT", `Topology.addPod: pod ${pod.key} exists`);
      if (options.node !== undefined) this.node(options.node);
      this.#pods.set(pod.key, pod);
      await this.#schedule();
      if (pod.phase === "Pending" && this.#kube && !pod.existsInKube) {
        await this.#kube.createPendingPod(this.#podInput(pod, undefined), this.#blockingTaints(pod), this.#nodes.size);
        pod.existsInKube = true;
      }
      return pod;
    });
  }

  /**
   * Deletes the pod as `kubectl delete pod` and its kubelet would: the DELETE starts its graceful termination (the
   * object stays, with `deletionTimestamp`, while its processes get SIGTERM and its grace period — `options.
   * gracePeriodSeconds`, else the API's default — scaled by `podGracePeriodMsPerSecond`, then SIGKILL); once they
   * stopped, its namespace is removed, the containers reported terminated and the object deleted. Resolves then.
   */
  removePod(name: string, namespace = "default", options: { gracePeriodSeconds?: number } = {}): Promise<void> {
    return this.#serial(async () => {
      const pod = this.pod(name, namespace);
      const kube = this.#kube && pod.existsInKube ? this.#kube : undefined;
      this.#pods.delete(pod.key);
      const deletion = kube ? await kube.beginPodDeletion(pod.namespace, pod.name, options.gracePeriodSeconds) : undefined;
      const graceMs = deletion ? deletion.gracePeriodSeconds * this.#opts.podGracePeriodMsPerSecond : this.#opts.stopGraceMs;
      const exits = await this.#procs.stop(`pod:${pod.key}`, graceMs);
      if (pod.netns && !pod.hostNetwork) await deleteNetns(pod.netns);
      if (kube && deletion) await kube.finishPodDeletion(pod.namespace, pod.name, deletion.uid, containerExitCode(exits));
      pod.markGone(new NetnsError("NOT_FOUND", `pod ${pod.key} was removed`));
    });
  }

  /**
   * Registers every node and pod in a Kubernetes API (and those added later), and watches Node objects so taint
   * changes made there (NMI clearing the startup taint) reach the scheduler.
   */
  registerInKube(connection: KubeConnection): Promise<void> {
    return this.#serial(async () => {
      if (this.#kube) throw new NetnsError("INVALID_ARGUMENT", "Topology.registerInKube: already registered");
      const kube = new KubeRegistrar(connection, this.#opts.now);
      for (const node of this.#nodes.values()) await kube.registerNode(this.#nodeInput(node));
      for (const pod of this.#pods.values()) {
        if (pod.phase === "Running" && pod.node && pod.ip) await kube.placePod({ ...this.#podInput(pod, pod.node.name), nodeName: pod.node.name }, false, pod.ip, pod.node.address);
        else await kube.createPendingPod(this.#podInput(pod, undefined), this.#blockingTaints(pod), this.#nodes.size);
        pod.existsInKube = true;
      }
      this.#kube = kube;
      kube.watchNodes(
        (name, taints) => {
          const node = this.#nodes.get(name);
          if (!node || sameTaints(node.taints, taints)) return;
          node.taints = taints;
          this.#serial(() => this.#schedule()).catch((err: unknown) => {
            if (!this.#closed) this.#opts.onBackgroundError(err);
          });
        },
        (err) => this.#opts.onBackgroundError(err),
      );
    });
  }

  spawnInNode(nodeName: string, command: string, args: readonly string[] = [], options: SpawnInNetnsOptions = {}): ChildProcess {
    this.#assertOpen();
    const node = this.node(nodeName);
    return this.#procs.track(spawnInNetns(node.netns, node.files, command, args, options), node.netns);
  }

  runInNode(nodeName: string, command: string, args: readonly string[] = [], options: RunInNetnsOptions = {}): Promise<ProcessResult> {
    const { timeoutMs, input, ...rest } = options;
    const child = this.spawnInNode(nodeName, command, args, rest);
    return runToCompletion(child, input, timeoutMs ?? this.#opts.runTimeoutMs, `${command} on node ${nodeName}`);
  }

  /** Starts a process in a Running pod's namespace (the node's for hostNetwork pods). */
  spawnInPod(pod: TopologyPod | string, command: string, args: readonly string[] = [], options: SpawnInNetnsOptions = {}): ChildProcess {
    this.#assertOpen();
    const p = typeof pod === "string" ? this.pod(pod) : pod;
    if (p.phase !== "Running" || !p.netns || !p.files) {
      throw new NetnsError("NOT_FOUND", `Topology.spawnInPod: pod ${p.key} is ${p.phase}, not Running (await pod.whenRunning() first)`);
    }
    return this.#procs.track(spawnInNetns(p.netns, p.files, command, args, options), `pod:${p.key}`);
  }

  runInPod(pod: TopologyPod | string, command: string, args: readonly string[] = [], options: RunInNetnsOptions = {}): Promise<ProcessResult> {
    const { timeoutMs, input, ...rest } = options;
    const p = typeof pod === "string" ? this.pod(pod) : pod;
    const child = this.spawnInPod(p, command, args, rest);
    return runToCompletion(child, input, timeoutMs ?? this.#opts.runTimeoutMs, `${command} in pod ${p.key}`);
  }

  /** Processes started here and still running. */
  get processCount(): number {
    return this.#procs.size;
  }

  /** Stops every process, deletes every namespace and interface, stops the Kubernetes watch. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue;
    await this.#kube?.close();
    await this.#procs.stop(undefined, this.#opts.stopGraceMs);
    for (const pod of this.#pods.values()) if (pod.phase === "Pending") pod.markGone(new NetnsError("CLOSED", `pod ${pod.key}: the topology was closed`));
    await Topology.cleanupStale(this.netnsPrefix);
    for (const node of this.#nodes.values()) await ip(["link", "del", `${DEFAULT_TOPOLOGY_OPTIONS.namePrefix}n${node.index}`]).catch(() => undefined);
    await Topology.cleanupStale(DEFAULT_TOPOLOGY_OPTIONS.namePrefix);
    await rm(this.runDir, { recursive: true, force: true });
  }

  #assertOpen(): void {
    if (this.#closed) throw new NetnsError("CLOSED", "Topology: already closed");
  }

  #hostsText(self: { address: string; names: string[] } | undefined): string {
    return hostsFileText(self, this.#services);
  }

  async #rewriteHostsFiles(): Promise<void> {
    for (const n of this.#nodes.values()) await writeNetnsFile(n.files.hostsFile, this.#hostsText({ address: n.address, names: [n.name] }));
    for (const p of this.#pods.values()) {
      if (p.files && !p.hostNetwork && p.ip) await writeNetnsFile(p.files.hostsFile, this.#hostsText({ address: p.ip, names: [p.name] }));
    }
  }

  #nodeInput(node: TopologyNode): Parameters<KubeRegistrar["registerNode"]>[0] {
    return { name: node.name, address: node.address, podCidr: node.podCidr, labels: node.labels, taints: node.taints, providerId: node.providerId };
  }

  #podInput(pod: TopologyPod, nodeName: string | undefined): PodObjectInput {
    return {
      name: pod.name,
      namespace: pod.namespace,
      labels: pod.labels,
      annotations: pod.annotations,
      hostNetwork: pod.hostNetwork,
      tolerations: pod.tolerations,
      requiredNode: pod.requiredNode,
      nodeName,
    };
  }

  #candidates(pod: TopologyPod): TopologyNode[] {
    return [...this.#nodes.values()].filter((n) => (pod.requiredNode === undefined || n.name === pod.requiredNode) && untoleratedTaints(n.taints, pod.tolerations).length === 0);
  }

  #blockingTaints(pod: TopologyPod): Taint[] {
    const nodes = [...this.#nodes.values()].filter((n) => pod.requiredNode === undefined || n.name === pod.requiredNode);
    return nodes.flatMap((n) => untoleratedTaints(n.taints, pod.tolerations));
  }

  /** Places every Pending pod that some node can take now (runs inside `#serial`). */
  async #schedule(): Promise<void> {
    for (const pod of this.#pods.values()) {
      if (pod.phase !== "Pending") continue;
      const candidates = this.#candidates(pod);
      if (candidates.length === 0) continue;
      const load = (n: TopologyNode): number => [...this.#pods.values()].filter((p) => p.node === n).length;
      const node = candidates.reduce((best, n) => (load(n) < load(best) ? n : best));
      await this.#place(pod, node);
    }
  }

  async #place(pod: TopologyPod, node: TopologyNode): Promise<void> {
    const d = DEFAULT_TOPOLOGY_OPTIONS;
    if (pod.hostNetwork) {
      pod.ip = node.address;
      pod.netns = node.netns;
      pod.files = node.files;
    } else {
      if (node.nextPodHost >= d.firstPodHost + d.maxPodsPerNode) throw new NetnsError("INVALID_ARGUMENT", `Topology: node ${node.name} has no pod addresses left`);
      const k = this.#nextPodIndex++;
      const netns = `${this.netnsPrefix}p${k}`;
      const address = `${d.podNetwork}.${node.index}.${node.nextPodHost++}`;
      await createPodNetwork({ netns, nodeNetns: node.netns, tmpVeth: `${d.namePrefix}t${k}`, nodeVeth: `veth${k}`, nodeBridge: NODE_BRIDGE, address, gateway: node.bridgeAddress });
      const hostsFile = join(this.runDir, `${netns}.hosts`);
      await writeNetnsFile(hostsFile, this.#hostsText({ address, names: [pod.name] }));
      pod.ip = address;
      pod.netns = netns;
      pod.files = { hostsFile, resolvFile: this.#resolvFile, caEnv: this.#caEnv };
    }
    pod.node = node;
    if (this.#kube) {
      await this.#kube.placePod({ ...this.#podInput(pod, node.name), nodeName: node.name }, pod.existsInKube, pod.ip, node.address);
      pod.existsInKube = true;
    }
    pod.markRunning();
  }
}

const VNET_BRIDGE = `${DEFAULT_TOPOLOGY_OPTIONS.namePrefix}vnet`;
const NODE_BRIDGE = "cbr0";
/** The infra namespace's nat chain for the per-node metadata address. */
export const IMDS_CHAIN = `${DEFAULT_TOPOLOGY_OPTIONS.namePrefix}imds`;

function vnetPrefix(): string {
  return DEFAULT_TOPOLOGY_OPTIONS.infraAddress.split(".").slice(0, 2).join(".");
}

function hostPortOf(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || (u.protocol === "https:" ? 443 : 80)) };
}

/** The pod's one container's exit code, from its processes: the first failure (128+n for signal n), else 0. */
function containerExitCode(exits: readonly ProcessExit[]): number {
  for (const e of exits) {
    if (e.signal) return 128 + (constants.signals[e.signal] ?? constants.signals.SIGTERM);
    if (e.exitCode !== null && e.exitCode !== 0) return e.exitCode;
  }
  return 0;
}

function sameTaints(a: readonly Taint[], b: readonly Taint[]): boolean {
  return JSON.stringify(a.map((t) => [t.key, t.value ?? "", t.effect])) === JSON.stringify(b.map((t) => [t.key, t.value ?? "", t.effect]));
}
