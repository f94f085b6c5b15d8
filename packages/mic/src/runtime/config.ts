import { hostname } from "node:os";
import type { TokenCredential } from "@azure/core-auth";
import type { KubeConfig } from "@podidentity/kube";
import type { Logger } from "pino";
import type { Dispatcher } from "undici";
import type { WriteBudgetOptions } from "../arm/write-budget";
import type { Clock } from "../clock";
import type { LeaderElectionOptions } from "./leader-election";

/** The Lease settings MIC is configured with: LeaderElector's options less its collaborators, plus an off switch. */
export type LeaderElectionConfig = { enabled: boolean } & Omit<LeaderElectionOptions, "clock" | "logger">;

/** Every tunable of MIC, resolved: what `resolveMicConfig` returns and every part reads (never a default of its own). */
export interface MicSettings {
  forceNamespaced: boolean;
  immutableUserMsis: readonly string[];
  identityAssignmentReconcileIntervalMs: number;
  armEndpoint: string;
  armScope: string;
  leaderElection: LeaderElectionConfig;
  writeBudget: Required<WriteBudgetOptions>;
  batchWindowMs: number;
  batchQuietMs: number;
  batchMaxWaitMs: number;
  stateTtlMs: number;
  identityBackoffInitialMs: number;
  identityBackoffMaxMs: number;
  targetBackoffInitialMs: number;
  targetBackoffMaxMs: number;
  reconcileConcurrency: number;
  pollIntervalMs: number;
  lroPollIntervalMs: number;
  /** Ports main.ts serves on; in-process (new Mic) a port is served only when given. */
  httpProbePort: number;
  prometheusPort: number;
}

/** Every default of MIC in one place; units are in the names. main.ts's flags take their defaults from here too. */
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
    /** v1.8: 15 s. */
    leaseDurationMs: 15_000,
    /** When not given: 2/3 and 1/7.5 of the lease duration (client-go's proportions), at least 500 ms apart. */
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
} as const satisfies MicSettings;

type Tunables = Omit<MicSettings, "leaderElection" | "writeBudget" | "httpProbePort" | "prometheusPort">;

export interface MicOptions extends Partial<Tunables> {
  kubeConfig: KubeConfig;
  credential: TokenCredential;
  /** undici dispatcher for ARM (e.g. one trusting an emulator's CA). */
  armDispatcher?: Dispatcher;
  /** For nodes without an Azure providerID: VMs are then addressed by node name here (v1.8's rule). */
  subscriptionId?: string;
  resourceGroup?: string;
  leaderElection?: Partial<LeaderElectionConfig>;
  writeBudget?: Partial<WriteBudgetOptions>;
  /** Ports for /healthz+/readyz and /metrics; undefined: not served. 0: any free port. */
  httpProbePort?: number;
  prometheusPort?: number;
  probeHost?: string;
  clock?: Clock;
  logger?: Logger;
  /** Node.js default metrics (process CPU, memory) in /metrics; on in main.ts. */
  defaultMetrics?: boolean;
}

/** MicOptions with every default filled in and checked, built once by the Mic constructor. */
export interface MicConfig extends Omit<MicSettings, "httpProbePort" | "prometheusPort"> {
  kubeConfig: KubeConfig;
  credential: TokenCredential;
  armDispatcher: Dispatcher | undefined;
  subscriptionId: string | undefined;
  resourceGroup: string | undefined;
  httpProbePort: number | undefined;
  prometheusPort: number | undefined;
  probeHost: string | undefined;
  defaultMetrics: boolean;
}

const POSITIVE_MS = [
  "identityAssignmentReconcileIntervalMs",
  "batchQuietMs",
  "batchMaxWaitMs",
  "identityBackoffInitialMs",
  "identityBackoffMaxMs",
  "targetBackoffInitialMs",
  "targetBackoffMaxMs",
  "pollIntervalMs",
  "lroPollIntervalMs",
] as const;

/** Fills in DEFAULT_MIC_OPTIONS and checks the result; messages name the option at fault. */
export function resolveMicConfig(options: MicOptions): MicConfig {
  if (!options.kubeConfig) throw new TypeError("Mic: kubeConfig is required");
  if (!options.credential) throw new TypeError("Mic: credential is required (see createArmCredential)");
  const D = DEFAULT_MIC_OPTIONS;
  const le = options.leaderElection ?? {};
  const leaseDurationMs = le.leaseDurationMs ?? D.leaderElection.leaseDurationMs;
  const config: MicConfig = {
    kubeConfig: options.kubeConfig,
    credential: options.credential,
    armDispatcher: options.armDispatcher,
    subscriptionId: options.subscriptionId,
    resourceGroup: options.resourceGroup,
    forceNamespaced: options.forceNamespaced ?? D.forceNamespaced,
    immutableUserMsis: (options.immutableUserMsis ?? D.immutableUserMsis).map((id) => id.trim().toLowerCase()).filter(Boolean),
    identityAssignmentReconcileIntervalMs: options.identityAssignmentReconcileIntervalMs ?? D.identityAssignmentReconcileIntervalMs,
    armEndpoint: options.armEndpoint ?? D.armEndpoint,
    armScope: options.armScope ?? D.armScope,
    leaderElection: {
      enabled: le.enabled ?? D.leaderElection.enabled,
      namespace: le.namespace ?? D.leaderElection.namespace,
      name: le.name ?? D.leaderElection.name,
      identity: le.identity ?? D.leaderElection.identity,
      leaseDurationMs,
      renewDeadlineMs: le.renewDeadlineMs ?? Math.round((leaseDurationMs * 2) / 3),
      retryPeriodMs: le.retryPeriodMs ?? Math.max(500, Math.round(leaseDurationMs / 7.5)),
    },
    writeBudget: { ...D.writeBudget, ...options.writeBudget },
    batchWindowMs: options.batchWindowMs ?? D.batchWindowMs,
    batchQuietMs: options.batchQuietMs ?? D.batchQuietMs,
    batchMaxWaitMs: options.batchMaxWaitMs ?? D.batchMaxWaitMs,
    stateTtlMs: options.stateTtlMs ?? D.stateTtlMs,
    identityBackoffInitialMs: options.identityBackoffInitialMs ?? D.identityBackoffInitialMs,
    identityBackoffMaxMs: options.identityBackoffMaxMs ?? D.identityBackoffMaxMs,
    targetBackoffInitialMs: options.targetBackoffInitialMs ?? D.targetBackoffInitialMs,
    targetBackoffMaxMs: options.targetBackoffMaxMs ?? D.targetBackoffMaxMs,
    reconcileConcurrency: options.reconcileConcurrency ?? D.reconcileConcurrency,
    pollIntervalMs: options.pollIntervalMs ?? D.pollIntervalMs,
    lroPollIntervalMs: options.lroPollIntervalMs ?? D.lroPollIntervalMs,
    httpProbePort: options.httpProbePort,
    prometheusPort: options.prometheusPort,
    probeHost: options.probeHost,
    defaultMetrics: options.defaultMetrics ?? false,
  };
  for (const name of POSITIVE_MS) {
    if (!(config[name] > 0)) throw new RangeError(`Mic: ${name} must be > 0, got ${config[name]}`);
  }
  for (const name of ["batchWindowMs", "stateTtlMs"] as const) {
    if (!(config[name] >= 0)) throw new RangeError(`Mic: ${name} must be >= 0, got ${config[name]}`);
  }
  if (!(Number.isInteger(config.reconcileConcurrency) && config.reconcileConcurrency >= 1)) {
    throw new RangeError(`Mic: reconcileConcurrency must be an integer >= 1, got ${config.reconcileConcurrency}`);
  }
  if (!(config.leaderElection.renewDeadlineMs < config.leaderElection.leaseDurationMs)) {
    throw new RangeError(`Mic: leaderElection.renewDeadlineMs (${config.leaderElection.renewDeadlineMs}) must be shorter than leaseDurationMs (${config.leaderElection.leaseDurationMs})`);
  }
  return config;
}
