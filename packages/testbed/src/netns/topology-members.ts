/**
 * The nodes and pods of a `Topology`: what callers read (names, namespaces, addresses, phase) and wait on.
 */
import { NetnsError } from "./errors";
import type { Taint, Toleration } from "./kube-objects";
import type { NetnsFiles } from "./process-runner";

export interface AddNodeOptions {
  /** Taints the node is created with (e.g. `[STARTUP_TAINT]`). */
  taints?: Taint[];
  labels?: Record<string, string>;
  /** `spec.providerID`, e.g. from `azureProviderId({ subscriptionId, resourceGroup, scaleSet, instanceId })`. */
  providerId?: string;
  /**
   * `net.ipv4.conf.{all,default,<each interface>}.route_localnet` in the node's namespace (0: as on a node no
   * kube-proxy ever touched, e.g. with Cilium's kube-proxy replacement). Default: inherited from the namespace
   * the topology runs in, as a new network namespace inherits IPv4 settings.
   */
  routeLocalnet?: 0 | 1;
}

export interface AddPodOptions {
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Run on this node only (a `kubernetes.io/hostname` node selector); default: the schedulable node with fewest pods. */
  node?: string;
  /** Run in the node's namespace with the node's address, as a hostNetwork pod. */
  hostNetwork?: boolean;
  tolerations?: Toleration[];
}

export type PodPhase = "Pending" | "Running" | "Deleted";

export class TopologyNode {
  readonly name: string;
  readonly index: number;
  /** Network namespace name (`ip netns exec <netns>`). */
  readonly netns: string;
  /** The node's InternalIP on the VNet. */
  readonly address: string;
  readonly podCidr: string;
  /** The node's address on its pod bridge: its pods' default gateway. */
  readonly bridgeAddress: string;
  readonly labels: Record<string, string>;
  readonly providerId: string | undefined;
  /** Current taints (the Node object's, once registered in Kubernetes). */
  taints: Taint[];
  /** Where 169.254.169.254:80 from this node and its pods leads, once set. */
  upstreamImds: { host: string; port: number } | undefined;
  /** @internal */ readonly files: NetnsFiles;
  /** @internal */ nextPodHost: number;

  /** @internal */
  constructor(init: Omit<TopologyNode, "taints" | "upstreamImds" | "nextPodHost"> & { taints: Taint[]; nextPodHost: number }) {
    this.name = init.name;
    this.index = init.index;
    this.netns = init.netns;
    this.address = init.address;
    this.podCidr = init.podCidr;
    this.bridgeAddress = init.bridgeAddress;
    this.labels = init.labels;
    this.providerId = init.providerId;
    this.files = init.files;
    this.taints = init.taints;
    this.upstreamImds = undefined;
    this.nextPodHost = init.nextPodHost;
  }
}

export class TopologyPod {
  readonly name: string;
  readonly namespace: string;
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
  readonly hostNetwork: boolean;
  readonly tolerations: Toleration[];
  readonly requiredNode: string | undefined;
  phase: PodPhase = "Pending";
  /** Set once placed. */
  node: TopologyNode | undefined;
  /** The pod's IP (the node's for hostNetwork pods), once placed. */
  ip: string | undefined;
  /** The network namespace its processes run in (the node's for hostNetwork pods), once placed. */
  netns: string | undefined;
  /** @internal */ files: NetnsFiles | undefined;
  /** @internal */ existsInKube = false;
  readonly #running: Promise<void>;
  #resolveRunning!: () => void;
  #rejectRunning!: (err: unknown) => void;

  /** @internal */
  constructor(name: string, o: Required<Omit<AddPodOptions, "node">> & { node: string | undefined }) {
    this.name = name;
    this.namespace = o.namespace;
    this.labels = o.labels;
    this.annotations = o.annotations;
    this.hostNetwork = o.hostNetwork;
    this.tolerations = o.tolerations;
    this.requiredNode = o.node;
    this.#running = new Promise((resolve, reject) => {
      this.#resolveRunning = resolve;
      this.#rejectRunning = reject;
    });
    // a pod nobody waits on must not become an unhandled rejection when the topology closes
    this.#running.catch(() => undefined);
  }

  get key(): string {
    return `${this.namespace}/${this.name}`;
  }

  /** Resolves when the pod runs (placed, addressed, Running in Kubernetes); rejects after `timeoutMs` or on close. */
  async whenRunning(timeoutMs = 10_000): Promise<this> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new NetnsError("TIMEOUT", `pod ${this.key} is not Running after ${timeoutMs} ms (phase ${this.phase}; is its node tainted?)`)), timeoutMs);
    });
    try {
      await Promise.race([this.#running, deadline]);
      return this;
    } finally {
      clearTimeout(timer);
    }
  }

  /** @internal */ markRunning(): void {
    this.phase = "Running";
    this.#resolveRunning();
  }

  /** @internal */ markGone(err: NetnsError): void {
    this.phase = "Deleted";
    this.#rejectRunning(err);
  }
}
