import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import type { KubeClient } from "../kube/kube-client";
import type { Pod } from "../kube/kube-types";
import { ResourceInformer } from "../kube/resource-informer";

export interface PodCacheOptions {
  client: KubeClient;
  nodeName: string;
  logger: Logger;
  onInformerError?: (informer: string, error: unknown) => void;
}

/** What the cache knows about a source IP. */
export type PodLookup = { kind: "pod"; pod: Pod } | { kind: "host-network"; pod: Pod } | { kind: "unknown" };

const key = (pod: Pod): string => `${pod.metadata?.namespace ?? ""}/${pod.metadata?.name ?? ""}`;

/** v1.8 resolved only Pending and Running pods: a finished pod's IP may already belong to a new one. */
function isLive(pod: Pod): boolean {
  const phase = pod.status?.phase;
  return phase !== "Succeeded" && phase !== "Failed" && pod.metadata?.deletionTimestamp === undefined;
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
  readonly informer: ResourceInformer<Pod>;
  readonly #byIp = new Map<string, Map<string, Pod>>();
  readonly #ipsOf = new Map<string, string[]>();
  readonly #changed = new EventEmitter();

  constructor(options: PodCacheOptions) {
    this.informer = new ResourceInformer<Pod>({
      name: "pods",
      client: options.client,
      path: "/api/v1/pods",
      fieldSelector: `spec.nodeName=${options.nodeName}`,
      logger: options.logger,
      onError: (e) => options.onInformerError?.("pods", e),
    });
    this.#changed.setMaxListeners(0);
    this.informer.on("add", (pod) => this.#index(pod));
    this.informer.on("update", (pod) => this.#index(pod));
    this.informer.on("delete", (pod) => this.#unindex(key(pod)));
  }

  get synced(): boolean {
    return this.informer.synced;
  }

  start(): Promise<void> {
    return this.informer.start();
  }

  stop(): Promise<void> {
    return this.informer.stop();
  }

  get size(): number {
    return this.#ipsOf.size;
  }

  /** The live pod with this IP now, without waiting. */
  lookup(ip: string): PodLookup {
    const pods = this.#byIp.get(ip);
    if (pods === undefined) return { kind: "unknown" };
    let hostNetwork: Pod | undefined;
    for (const pod of pods.values()) {
      if (!isLive(pod)) continue;
      if (pod.spec?.hostNetwork === true) hostNetwork ??= pod;
      else return { kind: "pod", pod };
    }
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
