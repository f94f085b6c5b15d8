import type { TokenCredential } from "@azure/core-auth";
import {
  API_GROUP_VERSION,
  AZURE_ASSIGNED_IDENTITY_NAMES,
  AZURE_IDENTITY_BINDING_NAMES,
  AZURE_IDENTITY_NAMES,
  POD_LABEL,
  canonicalResourceId,
  nameOf,
  namespaceOf,
  normalizeAzureIdentity,
  normalizeAzureIdentityBinding,
  type AzureIdentity,
  type AzureIdentityBinding,
} from "@podidentity/api";
import { Informer, KubeClient, clockFromSleep, type KubeConfig, type KubeObject } from "@podidentity/kube";
import { pino, type Logger } from "pino";
import type { Dispatcher } from "undici";
import { AssignedIdentityIndex, type IndexedAssignment } from "./state/assigned-identity-index";
import { AssignedIdentityReconciler } from "./reconcile/assigned-identity-reconciler";
import { AssignmentEngine } from "./assignment/assignment-engine";
import { createAssignmentPlanner } from "./assignment/assignment-planner";
import { ComputeClient } from "./arm/compute-client";
import { nodeComputeTarget, type ComputeTarget } from "./arm/compute-target";
import { WriteBudget, type WriteBudgetOptions } from "./arm/write-budget";
import { systemClock, type Clock } from "./clock";
import { DEFAULT_MIC_OPTIONS, type LeaderElectionConfig } from "./runtime/config";
import { DesiredState, type NodeObject, type PodObject } from "./state/desired-state";
import { DriftRepair } from "./assignment/drift-repair";
import { EventRecorder } from "./runtime/event-recorder";
import { TerminalError, describe } from "./errors";
import { LeaderElector } from "./runtime/leader-election";
import { MicMetrics } from "./runtime/metrics";
import { ProblemReporter } from "./runtime/problem-reporter";
import { startMetricsServer, startProbeServer, type RunningHttpServer } from "./runtime/probes";
import { StatusWriter } from "./reconcile/status-writer";
import { WorkQueue } from "./reconcile/work-queue";

export interface MicOptions {
  kubeConfig: KubeConfig;
  credential: TokenCredential;
  armEndpoint?: string;
  armScope?: string;
  /** undici dispatcher for ARM (e.g. one trusting an emulator's CA). */
  armDispatcher?: Dispatcher;
  /** For nodes without an Azure providerID: VMs are then addressed by node name here (v1.8's rule). */
  subscriptionId?: string;
  resourceGroup?: string;
  forceNamespaced?: boolean;
  immutableUserMsis?: readonly string[];
  identityAssignmentReconcileIntervalMs?: number;
  leaderElection?: Partial<LeaderElectionConfig>;
  /** Ports for /healthz+/readyz and /metrics; undefined: not served. 0: any free port. */
  httpProbePort?: number;
  prometheusPort?: number;
  probeHost?: string;
  writeBudget?: WriteBudgetOptions;
  batchWindowMs?: number;
  /** While changes keep arriving: further waits of this long before the first PATCH, at most batchMaxWaitMs in all. */
  batchQuietMs?: number;
  batchMaxWaitMs?: number;
  stateTtlMs?: number;
  identityBackoffInitialMs?: number;
  identityBackoffMaxMs?: number;
  targetBackoffInitialMs?: number;
  targetBackoffMaxMs?: number;
  reconcileConcurrency?: number;
  pollIntervalMs?: number;
  lroPollIntervalMs?: number;
  clock?: Clock;
  logger?: Logger;
  /** Node.js default metrics (process CPU, memory) in /metrics; on in main.ts. */
  defaultMetrics?: boolean;
}

interface Term {
  signal: AbortSignal;
  engine: AssignmentEngine;
  drift: DriftRepair;
}

const crdPath = (plural: string): string => `/apis/${API_GROUP_VERSION}/${plural}`;
const ABORTED = AbortSignal.abort(new Error("not the leader"));

/**
 * The Managed Identity Controller: informers on pods, nodes, identities, bindings and assigned identities feed
 * DesiredState and the AssignedIdentityIndex; while this replica leads, a work queue runs the
 * AssignedIdentityReconciler and an AssignmentEngine per VM/VMSS talks to ARM; DriftRepair re-checks ARM every
 * interval. Start it in-process with a KubeConfig, an ARM endpoint and a credential.
 */
export class Mic {
  readonly metrics: MicMetrics;
  readonly logger: Logger;
  readonly desired: DesiredState;
  readonly index: AssignedIdentityIndex;
  readonly #o: MicOptions;
  readonly #clock: Clock;
  readonly #immutable: Set<string>;
  readonly #leader: Required<LeaderElectionConfig>;
  #client: KubeClient | undefined;
  #informers: Array<Informer<KubeObject, unknown>> = [];
  #assignedInformer: Informer<KubeObject> | undefined;
  #identityInformer: Informer<KubeObject & AzureIdentity> | undefined;
  #bindingInformer: Informer<KubeObject & AzureIdentityBinding> | undefined;
  #queue: WorkQueue | undefined;
  #reconciler: AssignedIdentityReconciler | undefined;
  #events: EventRecorder | undefined;
  #problems: ProblemReporter | undefined;
  #status: StatusWriter | undefined;
  #compute: ComputeClient | undefined;
  #elector: LeaderElector | undefined;
  #term: Term | undefined;
  #termAbort: AbortController | undefined;
  #servers: RunningHttpServer[] = [];
  #probeUrl: string | undefined;
  #metricsUrl: string | undefined;
  #ready = false;
  #stopped = false;
  readonly #legacyByNode = new Map<string, Set<string>>();
  /** Each AzureIdentity's spec, labels and annotations as last seen: status writes (availableReplicas) are not edits. */
  readonly #identityEdits = new Map<string, string>();

  constructor(options: MicOptions) {
    if (!options.kubeConfig) throw new TypeError("Mic: kubeConfig is required");
    if (!options.credential) throw new TypeError("Mic: credential is required (see createArmCredential)");
    const interval = options.identityAssignmentReconcileIntervalMs ?? DEFAULT_MIC_OPTIONS.identityAssignmentReconcileIntervalMs;
    if (!(interval > 0)) throw new RangeError(`Mic: identityAssignmentReconcileIntervalMs must be > 0, got ${interval}`);
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.logger = options.logger ?? pino({ name: "podidentity-mic" });
    this.#immutable = new Set((options.immutableUserMsis ?? DEFAULT_MIC_OPTIONS.immutableUserMsis).map((id) => id.trim().toLowerCase()).filter(Boolean));
    this.#leader = { ...DEFAULT_MIC_OPTIONS.leaderElection, ...options.leaderElection };
    this.desired = new DesiredState({
      forceNamespaced: options.forceNamespaced ?? DEFAULT_MIC_OPTIONS.forceNamespaced,
      nodeTarget: (node) => nodeComputeTarget(node, { subscriptionId: options.subscriptionId, resourceGroup: options.resourceGroup }),
    });
    this.index = new AssignedIdentityIndex((nodeName) => this.desired.nodeTarget(nodeName));
    this.metrics = new MicMetrics({ defaultMetrics: options.defaultMetrics, pending: () => this.pendingAssignments() });
  }

  get isLeader(): boolean {
    return this.#term !== undefined && !this.#term.signal.aborted;
  }

  get ready(): boolean {
    return this.#ready;
  }

  get probeUrl(): string | undefined {
    return this.#probeUrl;
  }

  get metricsUrl(): string | undefined {
    return this.#metricsUrl;
  }

  /** AzureAssignedIdentities that exist and are not Assigned. */
  pendingAssignments(): number {
    let n = 0;
    for (const item of this.index.values()) if (item.state !== "Assigned") n++;
    return n;
  }

  isImmutable(clientId: string | null | undefined): boolean {
    return !!clientId && this.#immutable.has(clientId.toLowerCase());
  }

  /** Starts informers, probes and leader election; resolves once the informers have synced. */
  async start(): Promise<void> {
    const o = this.#o;
    const client = new KubeClient(o.kubeConfig, { userAgent: "podidentity-mic" });
    this.#client = client;
    const clock = this.#clock;
    const logger = this.logger;
    const budget = new WriteBudget(o.writeBudget ?? DEFAULT_MIC_OPTIONS.writeBudget, clock);
    this.#compute = new ComputeClient({
      endpoint: o.armEndpoint ?? DEFAULT_MIC_OPTIONS.armEndpoint,
      scope: o.armScope ?? DEFAULT_MIC_OPTIONS.armScope,
      credential: o.credential,
      clock,
      logger,
      writeBudget: budget,
      observer: this.metrics,
      lroPollIntervalMs: o.lroPollIntervalMs ?? DEFAULT_MIC_OPTIONS.lroPollIntervalMs,
      ...(o.armDispatcher && { dispatcher: o.armDispatcher }),
    });
    this.#events = new EventRecorder(client, { clock, logger, canWrite: () => this.isLeader, instance: this.#leader.identity, defer: () => this.#queue?.busy ?? false });
    this.#problems = new ProblemReporter(this.#events);
    this.#queue = new WorkQueue({
      concurrency: o.reconcileConcurrency ?? DEFAULT_MIC_OPTIONS.reconcileConcurrency,
      clock,
      onRun: (key, outcome, durationMs, queuedMs, error) => {
        this.metrics.reconcileTotal.inc({ result: outcome });
        this.metrics.reconcileDuration.observe(durationMs / 1000);
        this.metrics.queueLatency.observe(queuedMs / 1000);
        if (error) logger.warn({ key, err: describe(error) }, "reconcile failed; retrying with backoff");
      },
    });
    this.#reconciler = new AssignedIdentityReconciler({
      client,
      desired: this.desired,
      index: this.index,
      engine: () => this.#term?.engine,
      writer: {
        applyLocal: (object) => this.#assignedInformer?.applyLocal(object as never),
        applyLocalDelete: (key) => this.#assignedInformer?.applyLocalDelete(key),
      },
      events: this.#events,
      clock,
      logger,
      signal: () => this.#term?.signal ?? ABORTED,
      isImmutable: (id) => this.isImmutable(id),
      onAssigned: (seconds) => this.metrics.timeToAssigned.observe(seconds),
      pollIntervalMs: o.pollIntervalMs ?? DEFAULT_MIC_OPTIONS.pollIntervalMs,
    });
    this.#status = new StatusWriter(client, {
      clock,
      logger,
      index: this.index,
      canWrite: () => this.isLeader,
      signal: () => this.#term?.signal ?? ABORTED,
      identities: () => this.#identityInformer?.store ?? new Map(),
      bindings: () => this.#bindingInformer?.store ?? new Map(),
    });

    this.desired.onChange((change) => {
      for (const key of change.keys) this.#queue?.add(key);
      this.#problems?.skipped(change.skipped);
    });

    // The informers back off on MIC's clock; their failures are logged here (the informer itself never prints).
    const informerClock = clockFromSleep(clock);
    const informer = <T extends KubeObject>(path: string, labelSelector?: string): Informer<T> =>
      new Informer<T>(client, {
        path,
        ...(labelSelector !== undefined && { labelSelector }),
        clock: informerClock,
        onError: (error, retryInMs) =>
          logger.warn({ err: describe(error), path, retryInMs }, retryInMs === undefined ? "an informer handler failed" : "list/watch failed; retrying"),
      });
    const pods = informer<KubeObject & PodObject>("/api/v1/pods", POD_LABEL);
    pods.addHandlers({ add: (p) => this.desired.upsertPod(p), update: (p) => this.desired.upsertPod(p), delete: (p) => this.desired.deletePod(p) });
    const nodes = informer<KubeObject & NodeObject>("/api/v1/nodes");
    const onNode = (n: NodeObject): void => {
      this.desired.upsertNode(n);
      for (const key of this.#legacyByNode.get(nameOf(n)) ?? []) {
        const raw = this.#assignedInformer?.store.get(key);
        if (raw) this.#indexAssigned(raw);
      }
    };
    nodes.addHandlers({ add: onNode, update: onNode, delete: (n) => this.desired.deleteNode(n) });
    this.#identityInformer = informer<KubeObject & AzureIdentity>(crdPath(AZURE_IDENTITY_NAMES.plural));
    const onIdentity = (raw: KubeObject): void => {
      const n = normalizeAzureIdentity(raw);
      this.#problems?.invalid("AzureIdentity", n);
      this.desired.upsertIdentity(n.object);
      this.#identityEdited(n.object);
    };
    this.#identityInformer.addHandlers({
      add: onIdentity,
      update: onIdentity,
      delete: (raw) => {
        const identity = normalizeAzureIdentity(raw).object;
        this.#identityEdits.delete(`${namespaceOf(identity)}/${nameOf(identity)}`);
        this.desired.deleteIdentity(identity);
      },
    });
    this.#bindingInformer = informer<KubeObject & AzureIdentityBinding>(crdPath(AZURE_IDENTITY_BINDING_NAMES.plural));
    const onBinding = (raw: KubeObject): void => {
      const n = normalizeAzureIdentityBinding(raw);
      this.#problems?.invalid("AzureIdentityBinding", n);
      this.desired.upsertBinding(n.object);
    };
    this.#bindingInformer.addHandlers({ add: onBinding, update: onBinding, delete: (raw) => this.desired.deleteBinding(normalizeAzureIdentityBinding(raw).object) });
    this.#assignedInformer = informer<KubeObject>(crdPath(AZURE_ASSIGNED_IDENTITY_NAMES.plural));
    this.#assignedInformer.addHandlers({
      add: (raw) => this.#indexAssigned(raw),
      update: (raw) => this.#indexAssigned(raw),
      delete: (raw) => {
        const key = `${namespaceOf(raw)}/${nameOf(raw)}`;
        const old = this.index.delete(key);
        if (old) this.#assignedChanged(old);
        this.#queue?.add(key);
      },
    });
    this.#informers = [pods, nodes, this.#identityInformer, this.#bindingInformer, this.#assignedInformer] as Array<Informer<KubeObject, unknown>>;
    for (const informer of this.#informers) informer.start();

    if (o.httpProbePort !== undefined) {
      const server = await startProbeServer({ ready: () => this.#ready, live: () => !this.#stopped, isLeader: () => this.isLeader, notReadyReason: () => this.#elector?.problem }, o.httpProbePort, o.probeHost);
      this.#servers.push(server);
      this.#probeUrl = server.url;
    }
    if (o.prometheusPort !== undefined) {
      const server = await startMetricsServer(this.metrics.registry, o.prometheusPort, o.probeHost);
      this.#servers.push(server);
      this.#metricsUrl = server.url;
    }

    await Promise.all(this.#informers.map((i) => i.synced));
    // Objects listed before their nodes: resolve their VM/VMSS now that every informer has synced.
    for (const raw of this.#assignedInformer.store.values()) this.#indexAssigned(raw);
    this.#ready = true;
    logger.info({ assignments: this.index.size, desired: this.desired.size }, "informers synced");

    if (this.#leader.enabled) {
      this.#elector = new LeaderElector(
        client,
        { ...this.#leader, clock, logger },
        { onStartedLeading: (signal) => this.#startLeading(signal), onStoppedLeading: () => void this.#stopLeading() },
      );
      this.#elector.start();
    } else {
      this.#termAbort = new AbortController();
      this.#startLeading(this.#termAbort.signal);
    }
  }

  /** Stops writing at once, releases the lease, stops informers and servers. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#termAbort?.abort(new Error("stopping"));
    await this.#elector?.stop();
    await this.#stopLeading();
    await Promise.all(this.#informers.map((i) => i.stop()));
    await Promise.all(this.#servers.map((s) => s.close()));
    await this.#client?.close();
    this.#ready = false;
  }

  /** True when nothing is being reconciled or sent to ARM right now (tests wait for this). */
  get quiescent(): boolean {
    return !(this.#queue?.busy ?? false) && (this.#term?.engine.busyTargets() ?? 0) === 0;
  }

  /** Runs one drift-repair pass now (tests; the interval runs it otherwise). */
  driftRepairNow(): number {
    return this.#term?.drift.pass() ?? 0;
  }

  /** Waits for queued Kubernetes Events to be written (tests). */
  async flushEvents(): Promise<void> {
    await this.#events?.flush();
  }

  #indexAssigned(raw: unknown): void {
    const item = this.index.upsert(raw);
    const node = item.object.spec.nodename;
    if (node && item.fingerprint === undefined) {
      let set = this.#legacyByNode.get(node);
      if (!set) this.#legacyByNode.set(node, (set = new Set()));
      set.add(item.key);
    }
    this.#assignedChanged(item);
    this.#queue?.add(item.key);
  }

  /**
   * A user edited an AzureIdentity (or re-created it): an identity ARM refused is tried again at once instead of
   * after its backoff, so fixing the resource ID, or touching the object after fixing Azure, takes effect now.
   */
  #identityEdited(identity: AzureIdentity): void {
    const key = `${namespaceOf(identity)}/${nameOf(identity)}`;
    const { annotations, labels } = identity.metadata;
    const edit = JSON.stringify([identity.spec, annotations ?? {}, labels ?? {}]);
    if (this.#identityEdits.get(key) === edit) return;
    this.#identityEdits.set(key, edit);
    const resourceId = identity.spec.resourceID;
    const engine = this.#term?.engine;
    if (!engine || !resourceId) return;
    const retried = engine.retryNow(canonicalResourceId(resourceId));
    if (retried > 0) this.logger.info({ identity: key, targets: retried }, "AzureIdentity changed: retrying its failed assignments now");
  }

  #assignedChanged(item: IndexedAssignment): void {
    if (item.identityKey) this.#status?.enqueue("identity", item.identityKey);
    if (item.bindingKey) this.#status?.enqueue("binding", item.bindingKey);
  }

  #targets(): ComputeTarget[] {
    const targets = new Map<string, ComputeTarget>();
    for (const t of this.desired.targets()) targets.set(t.key, t);
    for (const item of this.index.values()) if (item.target && !targets.has(item.target.key)) targets.set(item.target.key, item.target);
    return [...targets.values()];
  }

  #startLeading(signal: AbortSignal): void {
    if (this.#stopped) return;
    const o = this.#o;
    this.metrics.leader.set(1);
    this.metrics.leaderTransitions.inc();
    const engine = new AssignmentEngine({
      compute: this.#compute!,
      planner: createAssignmentPlanner({
        desired: this.desired,
        index: this.index,
        isImmutable: (id) => this.isImmutable(id),
        recordAdding: (target, ids) => this.#reconciler!.recordAdding(target, ids),
        wake: (key) => this.#queue?.add(key),
        clientIdMismatch: (m) => this.#problems?.clientIdMismatch(m),
      }),
      clock: this.#clock,
      logger: this.logger,
      signal,
      batchWindowMs: o.batchWindowMs ?? DEFAULT_MIC_OPTIONS.batchWindowMs,
      batchQuietMs: o.batchQuietMs ?? DEFAULT_MIC_OPTIONS.batchQuietMs,
      batchMaxWaitMs: o.batchMaxWaitMs ?? DEFAULT_MIC_OPTIONS.batchMaxWaitMs,
      stateTtlMs: o.stateTtlMs ?? DEFAULT_MIC_OPTIONS.stateTtlMs,
      identityBackoffInitialMs: o.identityBackoffInitialMs ?? DEFAULT_MIC_OPTIONS.identityBackoffInitialMs,
      identityBackoffMaxMs: o.identityBackoffMaxMs ?? DEFAULT_MIC_OPTIONS.identityBackoffMaxMs,
      targetBackoffInitialMs: o.targetBackoffInitialMs ?? DEFAULT_MIC_OPTIONS.targetBackoffInitialMs,
      targetBackoffMaxMs: o.targetBackoffMaxMs ?? DEFAULT_MIC_OPTIONS.targetBackoffMaxMs,
      onSyncDone: (_target, outcome, ms) => this.metrics.syncDuration.observe({ result: outcome }, ms / 1000),
    });
    const drift = new DriftRepair({
      intervalMs: o.identityAssignmentReconcileIntervalMs ?? DEFAULT_MIC_OPTIONS.identityAssignmentReconcileIntervalMs,
      clock: this.#clock,
      logger: this.logger,
      signal,
      targets: () => this.#targets(),
      refresh: (target) => engine.request(target, { refresh: true }),
    });
    this.#term = { signal, engine, drift };
    // Fetch the ARM token now, not on the first assignment's critical path.
    this.#compute!.warmUp(signal).catch((error: unknown) => this.logger.warn({ err: describe(error) }, "could not get an ARM token yet"));
    this.#reconciler!.reset();
    const queue = this.#queue!;
    queue.start(async (key) => {
      try {
        return await this.#reconciler!.reconcile(key);
      } catch (error) {
        if (error instanceof TerminalError) {
          this.logger.error({ key, err: describe(error) }, "reconcile cannot succeed; not retrying");
          return;
        }
        throw error;
      }
    });
    for (const key of new Set([...this.desired.keys(), ...this.index.keys()])) queue.add(key);
    for (const kind of ["identity", "binding"] as const) this.#status?.enqueueAll(kind);
    this.#status?.start();
    drift.start();
    this.#problems?.reportAll(
      this.#identityInformer?.store.values() ?? [],
      this.#bindingInformer?.store.values() ?? [],
      this.desired.allSkipped(),
      { identity: normalizeAzureIdentity, binding: normalizeAzureIdentityBinding },
    );
    this.logger.info({ assignments: this.index.size, desired: this.desired.size }, "leading: reconciling");
  }

  async #stopLeading(): Promise<void> {
    if (!this.#term) return;
    this.#term = undefined;
    this.metrics.leader.set(0);
    await this.#queue?.stop();
    await this.#status?.stop();
  }
}

