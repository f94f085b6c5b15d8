import type { Clock } from "../clock";
import { armError } from "./arm-error";
import type { ArmRoute } from "./arm-route";
import { TokenBucket, takeAll, type TokenBucketOptions } from "./throttle";

export interface ArmThrottleLimits {
  resourceWriteLimit: TokenBucketOptions;
  subscriptionWriteLimit: TokenBucketOptions;
  subscriptionReadLimit: TokenBucketOptions;
}

/**
 * ARM/Compute throttling: writes spend from a per-VM/VMSS and a per-subscription bucket, reads from a
 * per-subscription bucket. A refused request answers 429 `OperationNotAllowed` with Compute's
 * `TooManyRequests` detail and `Retry-After` in seconds.
 */
export class ArmThrottle {
  readonly #clock: Clock;
  readonly #limits: ArmThrottleLimits;
  readonly #buckets = new Map<string, TokenBucket>();

  constructor(clock: Clock, limits: ArmThrottleLimits) {
    this.#clock = clock;
    this.#limits = limits;
  }

  /** Spends one request of `method` on `route`, or throws the 429. */
  check(method: string, route: ArmRoute, subscriptionId: string | undefined): void {
    const isWrite = method === "PATCH" || method === "PUT" || method === "DELETE";
    const sub = (subscriptionId ?? "tenant").toLowerCase();
    const buckets: Array<{ bucket: TokenBucket; group: string }> = [];
    if (isWrite) {
      buckets.push({ bucket: this.#bucket(`w/${sub}`, this.#limits.subscriptionWriteLimit), group: "PutVMSubscriptionMaximum" });
      if (route.kind === "compute") {
        const key = `w/${sub}/${route.resourceGroup}/${route.computeKind}/${route.name}`.toLowerCase();
        const group = route.computeKind === "virtualMachineScaleSets" ? "VMScaleSetUpdateResource" : "PutVMResource";
        buckets.push({ bucket: this.#bucket(key, this.#limits.resourceWriteLimit), group });
      }
    } else {
      buckets.push({ bucket: this.#bucket(`r/${sub}`, this.#limits.subscriptionReadLimit), group: "SubscriptionReads" });
    }
    const result = takeAll(buckets.map((b) => b.bucket));
    if (result.ok) return;
    const limited = buckets[result.limitedBy ?? 0]!;
    const now = this.#clock.now();
    const detail = JSON.stringify({
      operationGroup: limited.group,
      startTime: new Date(now).toISOString(),
      endTime: new Date(now + result.retryAfterMs).toISOString(),
      allowedRequestCount: limited.bucket.capacity,
      measuredRequestCount: limited.bucket.capacity + 1,
    });
    throw armError(429, "OperationNotAllowed", "The server rejected the request because too many requests have been received for this subscription.", {
      details: [{ code: "TooManyRequests", target: limited.group, message: detail }],
      headers: {
        "retry-after": String(Math.max(1, Math.ceil(result.retryAfterMs / 1000))),
        "x-ms-ratelimit-remaining-resource": `Microsoft.Compute/${limited.group};0`,
      },
    });
  }

  #bucket(key: string, limits: TokenBucketOptions): TokenBucket {
    let bucket = this.#buckets.get(key);
    if (!bucket) {
      bucket = new TokenBucket(limits, this.#clock);
      this.#buckets.set(key, bucket);
    }
    return bucket;
  }
}
