import type { Logger } from "pino";
import type { Clock } from "../clock";
import { describe, isAbortError } from "../errors";
import { KubeApiError } from "@podidentity/kube";
import type { KubeClient } from "@podidentity/kube";

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  /** This replica's identity (pod name / hostname). */
  identity: string;
  leaseDurationMs: number;
  /** A leader that could not renew for this long stops leading (must be < leaseDurationMs). */
  renewDeadlineMs: number;
  retryPeriodMs: number;
  clock: Clock;
  logger: Logger;
}

export interface LeaderCallbacks {
  /** Leadership began; `signal` aborts the moment it ends. */
  onStartedLeading(signal: AbortSignal): void;
  onStoppedLeading(): void;
}

interface Lease {
  apiVersion: "coordination.k8s.io/v1";
  kind: "Lease";
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string | null;
    renewTime?: string | null;
    leaseTransitions?: number;
  };
}

const microTime = (ms: number): string => new Date(ms).toISOString().replace(/Z$/, "000Z");

/**
 * Leader election on a coordination.k8s.io/v1 Lease (v1.8 used an Endpoints lock and exited on loss). Expiry is
 * judged by when *we* last saw the record change, as client-go does, so clock skew between replicas does not
 * matter. Losing the lease aborts the leadership signal at once — every ARM and API write in flight stops — and
 * the replica goes back to campaigning instead of exiting. Stopping releases the lease so a standby takes over
 * immediately.
 */
export class LeaderElector {
  readonly #client: KubeClient;
  readonly #o: LeaderElectionOptions;
  readonly #callbacks: LeaderCallbacks;
  readonly #stop = new AbortController();
  #term: AbortController | undefined;
  #observed: { record: string; atMs: number } | undefined;
  #lastRenewMs = 0;
  #loop: Promise<void> | undefined;
  #forbidden: string | undefined;

  constructor(client: KubeClient, options: LeaderElectionOptions, callbacks: LeaderCallbacks) {
    if (!(options.renewDeadlineMs < options.leaseDurationMs)) throw new RangeError("LeaderElector: renewDeadlineMs must be shorter than leaseDurationMs");
    if (!(options.retryPeriodMs > 0)) throw new RangeError("LeaderElector: retryPeriodMs must be > 0");
    this.#client = client;
    this.#o = options;
    this.#callbacks = callbacks;
  }

  get isLeader(): boolean {
    return this.#term !== undefined && !this.#term.signal.aborted;
  }

  /**
   * Why this replica cannot take part in the election, while the API refuses it the Lease (403: RBAC does not allow
   * this name or namespace); undefined once a request succeeds again. A 403 does not go away by retrying, so the
   * replica says so on /readyz instead of staying a silent standby forever.
   */
  get problem(): string | undefined {
    return this.#forbidden;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops campaigning; a leader releases the lease. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    if (this.isLeader) {
      this.#lose("shutting down");
      await this.#release().catch((error: unknown) => this.#o.logger.warn({ err: describe(error) }, "could not release the lease"));
    }
  }

  get #path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(this.#o.namespace)}/leases`;
  }

  async #run(): Promise<void> {
    const { clock, logger } = this.#o;
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      let ok = false;
      try {
        ok = await this.#tryAcquireOrRenew(signal);
        this.#forbidden = undefined;
      } catch (error) {
        if (signal.aborted || isAbortError(error)) break;
        const lease = `${this.#o.namespace}/${this.#o.name}`;
        if (error instanceof KubeApiError && error.statusCode === 403) {
          const problem = `the Kubernetes API forbids this replica its Lease ${lease} (${error.message}); grant get/update on leases "${this.#o.name}" and create on leases in namespace ${this.#o.namespace} (the rendered Role does), or pass the --leader-election-name/--leader-election-namespace it allows`;
          // Logged once per change, not once per retry period.
          if (this.#forbidden !== problem) logger.error({ err: describe(error), lease }, "leader election is forbidden: this replica can never lead");
          this.#forbidden = problem;
        } else {
          logger.warn({ err: describe(error), lease }, "lease request failed");
        }
      }
      const now = clock.now();
      if (ok) {
        this.#lastRenewMs = now;
        if (!this.isLeader) {
          this.#term = new AbortController();
          logger.info({ lease: `${this.#o.namespace}/${this.#o.name}`, identity: this.#o.identity }, "became the leader");
          this.#callbacks.onStartedLeading(this.#term.signal);
        }
      } else if (this.isLeader && now - this.#lastRenewMs > this.#o.renewDeadlineMs) {
        this.#lose("could not renew the lease within the renew deadline");
      }
      // Leaders renew every retry period too (client-go renews at retryPeriod until the renew deadline).
      await clock.sleep(this.#o.retryPeriodMs, signal);
    }
  }

  #lose(reason: string): void {
    if (!this.#term) return;
    this.#term.abort(new Error(`leadership lost: ${reason}`));
    this.#term = undefined;
    this.#o.logger.warn({ reason }, "stopped leading");
    this.#callbacks.onStoppedLeading();
  }

  async #tryAcquireOrRenew(signal: AbortSignal): Promise<boolean> {
    const { clock, identity, leaseDurationMs } = this.#o;
    const now = clock.now();
    let lease: Lease | undefined;
    try {
      lease = await this.#client.request<Lease>("GET", `${this.#path}/${encodeURIComponent(this.#o.name)}`, { signal });
    } catch (error) {
      if (!(error instanceof KubeApiError && error.statusCode === 404)) throw error;
    }
    const spec = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.max(1, Math.ceil(leaseDurationMs / 1000)),
      acquireTime: microTime(now),
      renewTime: microTime(now),
      leaseTransitions: 0,
    };
    if (!lease) {
      await this.#client.request("POST", this.#path, {
        body: { apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { name: this.#o.name, namespace: this.#o.namespace }, spec },
        signal,
      });
      this.#observed = { record: JSON.stringify(spec), atMs: now };
      return true;
    }
    const record = JSON.stringify(lease.spec);
    if (this.#observed?.record !== record) this.#observed = { record, atMs: now };
    const holder = lease.spec.holderIdentity ?? "";
    const durationMs = (lease.spec.leaseDurationSeconds ?? 0) * 1000;
    const expired = holder === "" || this.#observed.atMs + durationMs <= now;
    if (holder !== identity && !expired) {
      if (this.isLeader) this.#lose(`the lease is held by ${holder}`);
      return false;
    }
    const next = {
      ...spec,
      acquireTime: holder === identity ? (lease.spec.acquireTime ?? spec.acquireTime) : spec.acquireTime,
      leaseTransitions: (lease.spec.leaseTransitions ?? 0) + (holder === identity ? 0 : 1),
    };
    try {
      await this.#client.request("PUT", `${this.#path}/${encodeURIComponent(this.#o.name)}`, { body: { ...lease, spec: next }, signal });
    } catch (error) {
      // Someone else wrote first: not ours this round.
      if (error instanceof KubeApiError && error.statusCode === 409) return false;
      throw error;
    }
    this.#observed = { record: JSON.stringify(next), atMs: now };
    return true;
  }

  async #release(): Promise<void> {
    const lease = await this.#client.request<Lease>("GET", `${this.#path}/${encodeURIComponent(this.#o.name)}`);
    if (lease.spec.holderIdentity !== this.#o.identity) return;
    await this.#client.request("PUT", `${this.#path}/${encodeURIComponent(this.#o.name)}`, {
      body: { ...lease, spec: { ...lease.spec, holderIdentity: null, leaseDurationSeconds: 1, renewTime: microTime(this.#o.clock.now()) } },
    });
  }
}
