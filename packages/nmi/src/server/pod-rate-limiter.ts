import { LRUCache } from "lru-cache";

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

interface Bucket {
  tokens: number;
  atMs: number;
}

export class PodRateLimiter {
  readonly #o: Required<PodRateLimiterOptions>;
  readonly #pods: LRUCache<string, Bucket>;
  readonly #node: Bucket;

  constructor(options: PodRateLimiterOptions) {
    for (const key of ["requestsPerSecondPerPod", "burstPerPod", "requestsPerSecond", "burst", "maxTrackedPods"] as const) {
      const v = options[key];
      if (!Number.isFinite(v) || v <= 0) throw new RangeError(`PodRateLimiter: ${key} must be a positive number, got ${v}`);
    }
    this.#o = { now: () => performance.now(), ...options };
    this.#node = { tokens: options.burst, atMs: this.#o.now() };
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
      pod = { tokens: this.#o.burstPerPod, atMs: now };
      this.#pods.set(podAddress, pod);
    }
    refill(pod, now, this.#o.requestsPerSecondPerPod, this.#o.burstPerPod);
    refill(this.#node, now, this.#o.requestsPerSecond, this.#o.burst);
    if (pod.tokens < 1) return { ok: false, scope: "pod", retryAfterSeconds: waitSeconds(pod, this.#o.requestsPerSecondPerPod) };
    if (this.#node.tokens < 1) return { ok: false, scope: "node", retryAfterSeconds: waitSeconds(this.#node, this.#o.requestsPerSecond) };
    pod.tokens -= 1;
    this.#node.tokens -= 1;
    return { ok: true };
  }
}

function refill(bucket: Bucket, now: number, perSecond: number, capacity: number): void {
  if (now > bucket.atMs) bucket.tokens = Math.min(capacity, bucket.tokens + ((now - bucket.atMs) / 1000) * perSecond);
  bucket.atMs = now;
}

function waitSeconds(bucket: Bucket, perSecond: number): number {
  return Math.max(1, Math.ceil((1 - bucket.tokens) / perSecond));
}
