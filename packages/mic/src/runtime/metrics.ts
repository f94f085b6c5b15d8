import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { ArmCallObserver } from "../arm/compute-client";

const PREFIX = "podidentity_mic_";

/** MIC's Prometheus metrics, on a registry of its own (several MICs can run in one test process). */
export class MicMetrics implements ArmCallObserver {
  readonly registry = new Registry();
  readonly reconcileTotal: Counter<"result">;
  readonly reconcileDuration: Histogram;
  readonly queueLatency: Histogram;
  readonly timeToAssigned: Histogram;
  readonly armRequests: Counter<"operation" | "status">;
  readonly armDuration: Histogram<"operation">;
  readonly throttledWaits: Counter<"operation">;
  readonly throttledWaitSeconds: Counter<"operation">;
  readonly syncDuration: Histogram<"result">;
  readonly pendingAssignments: Gauge;
  readonly leader: Gauge;
  readonly leaderTransitions: Counter;

  constructor(options: { defaultMetrics?: boolean; pending?: () => number } = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
    this.reconcileTotal = new Counter({ name: `${PREFIX}reconcile_total`, help: "AzureAssignedIdentity reconciles by result: success, requeue, error (retried with backoff), terminal (not retried)", labelNames: ["result"], registers });
    this.reconcileDuration = new Histogram({ name: `${PREFIX}reconcile_duration_seconds`, help: "Time one reconcile took", buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers });
    this.queueLatency = new Histogram({ name: `${PREFIX}queue_latency_seconds`, help: "Time a key waited in the work queue", buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 30], registers });
    this.timeToAssigned = new Histogram({
      name: `${PREFIX}time_to_assigned_seconds`,
      help: "From MIC first wanting an assignment to its AzureAssignedIdentity being Assigned",
      buckets: [0.1, 0.5, 1, 2, 5, 10, 20, 40, 60, 120, 300],
      registers,
    });
    this.armRequests = new Counter({ name: `${PREFIX}arm_requests_total`, help: "ARM requests by operation and HTTP status", labelNames: ["operation", "status"], registers });
    this.armDuration = new Histogram({ name: `${PREFIX}arm_request_duration_seconds`, help: "ARM request latency", labelNames: ["operation"], buckets: [0.05, 0.1, 0.5, 1, 2, 5, 10, 30], registers });
    this.throttledWaits = new Counter({ name: `${PREFIX}arm_throttled_waits_total`, help: "429/503 answers waited out (Retry-After)", labelNames: ["operation"], registers });
    this.throttledWaitSeconds = new Counter({ name: `${PREFIX}arm_throttled_wait_seconds_total`, help: "Time spent waiting for Retry-After", labelNames: ["operation"], registers });
    this.syncDuration = new Histogram({ name: `${PREFIX}vm_sync_duration_seconds`, help: "One VM/VMSS identity sync (GET, PATCHes, LROs)", labelNames: ["result"], buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120], registers });
    const pending = options.pending;
    this.pendingAssignments = new Gauge({
      name: `${PREFIX}pending_assignments`,
      help: "AzureAssignedIdentities not yet Assigned",
      registers,
      collect() {
        if (pending) this.set(pending());
      },
    });
    this.leader = new Gauge({ name: `${PREFIX}leader`, help: "1 while this replica holds the lease", registers });
    this.leaderTransitions = new Counter({ name: `${PREFIX}leader_elections_total`, help: "Times this replica became the leader", registers });
  }

  armCall(operation: string, statusCode: number, durationMs: number): void {
    this.armRequests.inc({ operation, status: String(statusCode) });
    this.armDuration.observe({ operation }, durationMs / 1000);
  }

  throttled(operation: string, waitMs: number): void {
    this.throttledWaits.inc({ operation });
    this.throttledWaitSeconds.inc({ operation }, waitMs / 1000);
  }
}
