import type { Clock } from "../clock";
import { armError } from "./arm-error";
import type { ArmRoute } from "./arm-route";
import { TokenBucket, takeAll, type TokenBucketOptions } from "./throttle";

export interface ArmThrottleLimits {
  /** ARM, per subscription and principal: writes (PUT/PATCH/POST). */
  subscriptionWriteLimit: TokenBucketOptions;
  /** ARM, per subscription and principal: reads (GET/HEAD, operation polls included). */
  subscriptionReadLimit: TokenBucketOptions;
  /** ARM, per subscription and principal: deletes. */
  subscriptionDeleteLimit: TokenBucketOptions;
  /** Compute, per VM/VMSS: updates. */
  resourceWriteLimit: TokenBucketOptions;
  /** Compute, per subscription: VM/VMSS updates across all of them. */
  computeSubscriptionWriteLimit: TokenBucketOptions;
}

/** What one admitted request leaves, for the `x-ms-ratelimit-remaining-*` headers. */
export interface ThrottleHeaders {
  readonly [name: string]: string;
}

type Kind = "reads" | "writes" | "deletes";

/**
 * Azure's two throttling layers (2024 token-bucket model). ARM first: per subscription and principal, reads,
 * writes and deletes each spend from their own bucket; a refused request gets ARM's 429
 * `SubscriptionRequestsThrottled`. Then Compute, for VM/VMSS writes: a per-resource and a per-subscription
 * bucket; a refused request gets Compute's 429 `OperationNotAllowed` with a `TooManyRequests` detail. Every
 * admitted request reports what is left, as ARM does: `x-ms-ratelimit-remaining-subscription-{reads,writes,deletes}`
 * and, for Compute writes, `x-ms-ratelimit-remaining-resource: Microsoft.Compute/<policy>;<n>,…`.
 */
export class ArmThrottle {
  readonly #clock: Clock;
  readonly #limits: ArmThrottleLimits;
  readonly #buckets = new Map<string, TokenBucket>();

  constructor(clock: Clock, limits: ArmThrottleLimits) {
    this.#clock = clock;
    this.#limits = limits;
  }

  /** Spends one request of `method` on `route` by `actor` (the token's object ID), or throws the 429. */
  check(method: string, route: ArmRoute, subscriptionId: string | undefined, actor: string): ThrottleHeaders {
    const kind: Kind = method === "DELETE" ? "deletes" : method === "GET" || method === "HEAD" ? "reads" : "writes";
    const scope = subscriptionId === undefined ? "tenant" : "subscription";
    const armKey = `arm/${kind}/${(subscriptionId ?? "tenant").toLowerCase()}/${actor.toLowerCase()}`;
    const armLimit = kind === "reads" ? this.#limits.subscriptionReadLimit : kind === "deletes" ? this.#limits.subscriptionDeleteLimit : this.#limits.subscriptionWriteLimit;
    const arm = this.#bucket(armKey, armLimit);
    const armHeader = `x-ms-ratelimit-remaining-${scope}-${kind}`;

    const armWait = arm.waitMs();
    if (armWait > 0) {
      const seconds = Math.max(1, Math.ceil(armWait / 1000));
      const singular = kind === "reads" ? "read" : kind === "deletes" ? "delete" : "write";
      const what = subscriptionId === undefined ? "tenant" : `subscription '${subscriptionId}'`;
      throw armError(429, "SubscriptionRequestsThrottled", `Number of '${singular}' requests for ${what} actor '${actor}' exceeded. Please try again after '${seconds}' seconds.`, {
        headers: { "retry-after": String(seconds), [armHeader]: "0" },
      });
    }

    const compute: Array<{ bucket: TokenBucket; policy: string }> = [];
    if (kind === "writes" && route.kind === "compute" && subscriptionId !== undefined) {
      const sub = subscriptionId.toLowerCase();
      const vmss = route.computeKind === "virtualMachineScaleSets";
      compute.push({ bucket: this.#bucket(`compute/${sub}`, this.#limits.computeSubscriptionWriteLimit), policy: "PutVMSubscriptionMaximum" });
      const key = `compute/${sub}/${route.resourceGroup}/${route.computeKind}/${route.name}`.toLowerCase();
      compute.push({ bucket: this.#bucket(key, this.#limits.resourceWriteLimit), policy: vmss ? "VMScaleSetUpdateResource" : "PutVMResource" });
    }
    const result = takeAll([arm, ...compute.map((c) => c.bucket)]);
    if (!result.ok) {
      // ARM admitted it (checked above); a Compute bucket refused. ARM's token is not spent either (takeAll).
      const limited = compute[(result.limitedBy ?? 1) - 1]!;
      const now = this.#clock.now();
      const detail = JSON.stringify({
        operationGroup: limited.policy,
        startTime: new Date(now).toISOString(),
        endTime: new Date(now + result.retryAfterMs).toISOString(),
        allowedRequestCount: limited.bucket.capacity,
        measuredRequestCount: limited.bucket.capacity + 1,
      });
      throw armError(429, "OperationNotAllowed", "The server rejected the request because too many requests have been received for this subscription.", {
        details: [{ code: "TooManyRequests", target: limited.policy, message: detail }],
        headers: {
          "retry-after": String(Math.max(1, Math.ceil(result.retryAfterMs / 1000))),
          [armHeader]: String(Math.floor(arm.available())),
          "x-ms-ratelimit-remaining-resource": compute.map((c) => `Microsoft.Compute/${c.policy};${c === limited ? 0 : Math.floor(c.bucket.available())}`).join(","),
        },
      });
    }
    const headers: Record<string, string> = { [armHeader]: String(Math.floor(arm.available())) };
    if (compute.length > 0) {
      headers["x-ms-ratelimit-remaining-resource"] = compute.map((c) => `Microsoft.Compute/${c.policy};${Math.floor(c.bucket.available())}`).join(",");
    }
    return headers;
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
