import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import { Informer, type KubeClient } from "@podidentity/kube";
import type { Pod } from "../kube-objects";

export interface PodCacheOptions {
  client: KubeClient;
  nodeName: string;
  logger: Logger;
  onInformerError?: (informer: string, error: unknown) => void;
}

/** What the cache knows about a source IP. */
export type PodLookup = { kind: "pod"; pod: Pod } | { kind: "host-network"; pod: Pod } | { kind: "unknown" };

/**
 * What PodCache keeps of a pod: what lookup, the identity match (labels) and the logs read. A pod object from the API
 * is 5–20 KB of JSON (managed fields, container specs); this is a few hundred bytes, on every node.
 */
export function projectPod(pod: Pod): Pod {
  const m = pod.metadata ?? {};
  const statuses = pod.status?.["containerStatuses"];
  return {
    metadata: {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      creationTimestamp: m.creationTimestamp,
      ...(m.deletionTimestamp !== undefined && { deletionTimestamp: m.deletionTimestamp }),
      ...(m.labels !== undefined && { labels: m.labels }),
    },
    spec: { nodeName: pod.spec?.nodeName, hostNetwork: pod.spec?.hostNetwork === true },
    status: {
      phase: pod.status?.phase,
      podIP: pod.status?.podIP,
      podIPs: pod.status?.podIPs?.map((p) => ({ ip: p.ip })),
      // Only whether each container has terminated (see containersStopped).
      ...(Array.isArray(statuses) && {
        containerStatuses: statuses.map((s: { state?: { terminated?: unknown } } | null) => ({ state: s?.state?.terminated !== undefined ? { terminated: {} } : {} })),
      }),
    },
  };
}

const key = (pod: Pod): string => `${pod.metadata?.namespace ?? ""}/${pod.metadata?.name ?? ""}`;

const isTerminating = (pod: Pod): boolean => pod.metadata?.deletionTimestamp !== undefined;

/** Every container status reports `terminated` (the kubelet's word that nothing of the pod runs any more). */
function containersStopped(pod: Pod): boolean {
  const statuses = pod.status?.["containerStatuses"];
  if (!Array.isArray(statuses) || statuses.length === 0) return false;
  return statuses.every((s: { state?: { terminated?: unknown } } | null) => s?.state?.terminated !== undefined);
}

/**
 * Whether the pod may still be served. v1.8 resolved only Pending and Running pods: a finished pod's IP may already
 * belong to a new one. A pod being deleted (deletionTimestamp set) is served through its grace period while its
 * containers run — phase Running, not every container reported terminated — because that is when its SIGTERM
 * handler and preStop hook flush state and read a last secret (MIC keeps its identities until the pod is gone).
 */
function isLive(pod: Pod): boolean {
  const phase = pod.status?.phase;
  if (phase === "Succeeded" || phase === "Failed") return false;
  if (!isTerminating(pod)) return true;
  return phase === "Running" && !containersStopped(pod);
}

/**
 * Which of two live pods with the same IP owns it. The address goes back to the pod network only once a pod's
 * sandbox is torn down, which happens before its object leaves the API; so a pod that is not terminating owns the IP
 * over one that is (the old pod's containers are gone even if its object still says Running). Two pods alike in that
 * (an informer behind on a finished pod) go to the newer one by creationTimestamp, then by namespace/name so the
 * answer never depends on event order.
 */
function owns(a: Pod, b: Pod): boolean {
  if (isTerminating(a) !== isTerminating(b)) return !isTerminating(a);
  const ca = String(a.metadata?.["creationTimestamp"] ?? "");
  const cb = String(b.metadata?.["creationTimestamp"] ?? "");
  if (ca !== cb) return ca > cb;
  return key(a) < key(b);
}

function ipsOf(pod: Pod): string[] {
  const ips = new Set<string>();
  if (pod.status?.podIP) ips.add(pod.status.podIP);
  for (const p of pod.status?.podIPs ?? []) if (p.ip) ips.add(p.ip);
  return [...ips];
}

/**
 * The pods of this node (informer with field selector `spec.nodeName=<node>`), indexed by pod IP, so a token
 * request costs no API call — v1.8 listed pods on every request, which let noisy pods load the API server and
 * turned every API hiccup into 500s.
 */
export class PodCache {
  readonly informer: Informer<Pod>;
  readonly #byIp = new Map<string, Map<string, Pod>>();
  readonly #ipsOf = new Map<string, string[]>();
  readonly #changed = new EventEmitter();

  constructor(options: PodCacheOptions) {
    this.informer = new Informer<Pod>(options.client, {
      path: "/api/v1/pods",
      fieldSelector: `spec.nodeName=${options.nodeName}`,
      project: projectPod,
      onError: (error, retryInMs) => {
        options.onInformerError?.("pods", error);
        options.logger.warn(
          { informer: "pods", status: (error as { status?: number }).status, err: (error as Error).message, retryInMs },
          retryInMs === undefined ? "an informer handler failed" : "informer list/watch failed; retrying with backoff",
        );
      },
    });
    this.#changed.setMaxListeners(0);
    this.informer.addHandlers({
      add: (pod) => this.#index(pod),
      update: (pod) => this.#index(pod),
      delete: (pod) => this.#unindex(key(pod)),
    });
  }

  get synced(): boolean {
    return this.informer.hasSynced;
  }

  /** Resolves after the first complete list (the informer keeps watching after that). */
  start(): Promise<void> {
    this.informer.start();
    return this.informer.synced;
  }

  stop(): Promise<void> {
    return this.informer.stop();
  }

  get size(): number {
    return this.#ipsOf.size;
  }

  /**
   * The live pod with this IP now, without waiting: a pod in its grace period while its containers run, but a pod
   * not being deleted wins the IP over one that is (see `owns`). hostNetwork pods only when no pod owns the IP.
   */
  lookup(ip: string): PodLookup {
    const pods = this.#byIp.get(ip);
    if (pods === undefined) return { kind: "unknown" };
    let owner: Pod | undefined;
    let hostNetwork: Pod | undefined;
    for (const pod of pods.values()) {
      if (!isLive(pod)) continue;
      if (pod.spec?.hostNetwork === true) {
        if (hostNetwork === undefined || owns(pod, hostNetwork)) hostNetwork = pod;
      } else if (owner === undefined || owns(pod, owner)) {
        owner = pod;
      }
    }
    if (owner !== undefined) return { kind: "pod", pod: owner };
    return hostNetwork !== undefined ? { kind: "host-network", pod: hostNetwork } : { kind: "unknown" };
  }

  /**
   * Like lookup, but an unknown IP waits up to `timeoutMs` for the informer to learn it (a pod's first request
   * can race the watch event that carries its IP). Woken by informer events, not by polling.
   */
  async waitFor(ip: string, timeoutMs: number, signal?: AbortSignal): Promise<PodLookup> {
    let found = this.lookup(ip);
    if (found.kind !== "unknown" || timeoutMs <= 0) return found;
    return new Promise<PodLookup>((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.#changed.off("change", onChange);
        signal?.removeEventListener("abort", finish);
        resolve(found);
      };
      const onChange = (changedIp: string): void => {
        if (changedIp !== ip) return;
        found = this.lookup(ip);
        if (found.kind !== "unknown") finish();
      };
      const timer = setTimeout(finish, timeoutMs);
      this.#changed.on("change", onChange);
      signal?.addEventListener("abort", finish, { once: true });
    });
  }

  #index(pod: Pod): void {
    const k = key(pod);
    const ips = ipsOf(pod);
    const previous = this.#ipsOf.get(k) ?? [];
    for (const ip of previous) if (!ips.includes(ip)) this.#byIp.get(ip)?.delete(k);
    for (const ip of ips) {
      let pods = this.#byIp.get(ip);
      if (pods === undefined) this.#byIp.set(ip, (pods = new Map()));
      pods.set(k, pod);
    }
    this.#ipsOf.set(k, ips);
    for (const ip of new Set([...previous, ...ips])) {
      if (this.#byIp.get(ip)?.size === 0) this.#byIp.delete(ip);
      this.#changed.emit("change", ip);
    }
  }

  #unindex(k: string): void {
    for (const ip of this.#ipsOf.get(k) ?? []) {
      const pods = this.#byIp.get(ip);
      pods?.delete(k);
      if (pods?.size === 0) this.#byIp.delete(ip);
      this.#changed.emit("change", ip);
    }
    this.#ipsOf.delete(k);
  }
}
