import { LRUCache } from "lru-cache";
import { TokenBucket } from "../token-bucket";

/**
 * Rate limits for proxied requests: a token bucket per pod (source address) and one for the whole node.
 *
 * IMDS's budget for everything but tokens is per VM (5 requests/s): without this, one pod polling or fuzzing the
 * proxied routes spends it for every pod and node agent on the node (issue 12 measured 342 IMDS 429s from one
 * pod). The per-pod buckets live in a bounded LRU: a forgotten pod starts again with a full bucket, which the node
 * bucket still bounds.
 */

export interface PodRateLimiterOptions {
  requestsPerSecondPerPod: number;
  burstPerPod: number;
  /** Node-wide ceiling for all pods together. */
  requestsPerSecond: number;
  burst: number;
  /** How many pods' buckets are kept (least recently used forgotten first). */
  maxTrackedPods: number;
  now?: () => number;
}

export type RateDecision = { ok: true } | { ok: false; scope: "pod" | "node"; retryAfterSeconds: number };

export class PodRateLimiter {
  readonly #o: Required<PodRateLimiterOptions>;
  readonly #pods: LRUCache<string, TokenBucket>;
  readonly #node: TokenBucket;

  constructor(options: PodRateLimiterOptions) {
    for (const key of ["requestsPerSecondPerPod", "burstPerPod", "requestsPerSecond", "burst", "maxTrackedPods"] as const) {
      const v = options[key];
      if (!Number.isFinite(v) || v <= 0) throw new RangeError(`PodRateLimiter: ${key} must be a positive number, got ${v}`);
    }
    this.#o = { now: () => performance.now(), ...options };
    this.#node = new TokenBucket(options.requestsPerSecond, options.burst, this.#o.now());
    this.#pods = new LRUCache({ max: options.maxTrackedPods });
  }

  /** Pods currently tracked (bounded by maxTrackedPods). */
  get trackedPods(): number {
    return this.#pods.size;
  }

  /** Takes one request from the pod's and the node's buckets, or neither; says how long to wait when refused. */
  take(podAddress: string): RateDecision {
    const now = this.#o.now();
    let pod = this.#pods.get(podAddress);
    if (pod === undefined) {
      pod = new TokenBucket(this.#o.requestsPerSecondPerPod, this.#o.burstPerPod, now);
      this.#pods.set(podAddress, pod);
    }
    if (!pod.available(now)) return { ok: false, scope: "pod", retryAfterSeconds: retryAfterSeconds(pod) };
    if (!this.#node.available(now)) return { ok: false, scope: "node", retryAfterSeconds: retryAfterSeconds(this.#node) };
    pod.take();
    this.#node.take();
    return { ok: true };
  }
}

/** Retry-After in whole seconds, at least 1. */
function retryAfterSeconds(bucket: TokenBucket): number {
  return Math.max(1, Math.ceil(bucket.msUntilToken() / 1000));
}
