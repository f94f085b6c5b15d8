import { hostname } from "node:os";
import type { LeaderElectionOptions } from "./leader-election";

/** Every default of MIC in one place; units are in the names. Flags in main.ts map onto these. */
export const DEFAULT_MIC_OPTIONS = {
  /** docs/contract.md: namespaced matching by default (v1.8 defaulted to cluster-wide). */
  forceNamespaced: true,
  /** Client IDs never removed from a VM/VMSS (v1.8 --immutable-user-msis). */
  immutableUserMsis: [] as readonly string[],
  /** Drift repair interval (v1.8 --identity-assignment-reconcile-interval, 3m). */
  identityAssignmentReconcileIntervalMs: 3 * 60_000,
  armEndpoint: "https://management.azure.com",
  armScope: "https://management.azure.com/.default",
  leaderElection: {
    enabled: true,
    namespace: "default",
    name: "aad-pod-identity-mic",
    identity: hostname(),
    /** v1.8: 15 s; renew deadline and retry period as client-go's proportions. */
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
  },
  /**
   * Azure compute: VMSS/VM update per resource refills 4/min with a burst of 12. At or below 20 subscription writes
   * left (ARM's x-ms-ratelimit-remaining-subscription-writes), writes are spaced at ARM's refill, 100 ms (10/s).
   */
  writeBudget: { capacity: 12, refillPerMinute: 4, subscriptionLowWatermark: 20, subscriptionRefillIntervalMs: 100 },
  /** How long the first change waits for more to share its PATCH. */
  batchWindowMs: 50,
  /**
   * While changes keep arriving (a Deployment scaling up brings its pods over a second or more), the first PATCH
   * waits on in steps of this long, at most batchMaxWaitMs in all: a change that misses the PATCH waits for the
   * VM/VMSS's whole operation (tens of seconds on Azure) before the next one.
   */
  batchQuietMs: 250,
  batchMaxWaitMs: 2_000,
  /** Reuse the state our own PATCH returned for this long instead of a new GET. */
  stateTtlMs: 60_000,
  identityBackoffInitialMs: 2_000,
  identityBackoffMaxMs: 120_000,
  targetBackoffInitialMs: 1_000,
  targetBackoffMaxMs: 30_000,
  reconcileConcurrency: 32,
  /** Re-check a pending assignment at least this often. */
  pollIntervalMs: 30_000,
  lroPollIntervalMs: 1_000,
  httpProbePort: 8080,
  prometheusPort: 8888,
} as const;

/** The Lease settings MIC is configured with: LeaderElector's options less its collaborators, plus an off switch. */
export type LeaderElectionConfig = { enabled: boolean } & Omit<LeaderElectionOptions, "clock" | "logger">;
