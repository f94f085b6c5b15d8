import {
  canonicalResourceId,
  nameOf,
  namespaceOf,
  normalizeAzureIdentity,
  normalizeAzureIdentityBinding,
  type AzureAssignedIdentity,
  type AzureIdentity,
} from "@podidentity/api";
import { KubeClient, type KubeObject } from "@podidentity/kube";
import { pino, type Logger } from "pino";
import { ComputeClient } from "./arm/compute-client";
import { nodeComputeTarget, type ComputeTarget } from "./arm/compute-target";
import { WriteBudget } from "./arm/write-budget";
import { AddedByRecord } from "./assignment/added-by-record";
import { AssignmentEngine } from "./assignment/assignment-engine";
import { createAssignmentPlanner } from "./assignment/assignment-planner";
import { DriftRepair } from "./assignment/drift-repair";
import { systemClock, type Clock } from "./clock";
import { TerminalError, describe } from "./errors";
import { AssignedIdentityReconciler } from "./reconcile/assigned-identity-reconciler";
import { StatusWriter } from "./reconcile/status-writer";
import { WorkQueue } from "./reconcile/work-queue";
import { resolveMicConfig, type MicConfig, type MicOptions } from "./runtime/config";
import { EventRecorder } from "./runtime/event-recorder";
import { LeaderElector } from "./runtime/leader-election";
import { Leadership } from "./runtime/leadership";
import { MicMetrics } from "./runtime/metrics";
import { ProblemReporter } from "./runtime/problem-reporter";
import { startMetricsServer, startProbeServer, type RunningHttpServer } from "./runtime/probes";
import { AssignedIdentityIndex, type IndexedAssignment } from "./state/assigned-identity-index";
import { AssignedIdentityWriter } from "./state/assigned-identity-writer";
import { DesiredState, type NodeObject } from "./state/desired-state";
import { createMicInformers, type MicInformers } from "./state/informers";

export type { MicOptions } from "./runtime/config";

/**
 * The Managed Identity Controller, and where its parts are put together (src/README.md draws the data flow):
 * informers feed DesiredState and the AssignedIdentityIndex (state/); while this replica leads, a work queue runs
 * the AssignedIdentityReconciler (reconcile/), which asks the AssignmentEngine (assignment/) to bring a VM/VMSS in
 * line through ARM (arm/); DriftRepair re-checks ARM every interval. Every part is built here, in the constructor,
 * from one resolved configuration; start() only starts them.
 */
export class Mic {
  readonly metrics: MicMetrics;
  readonly logger: Logger;
  readonly desired: DesiredState;
  readonly index: AssignedIdentityIndex;
  readonly #config: MicConfig;
  readonly #immutable: Set<string>;
  readonly #client: KubeClient;
  readonly #informers: MicInformers;
  readonly #leadership = new Leadership();
  /** Leadership when leader election is off: this replica leads from start() to stop(). */
  readonly #alwaysLeader = new AbortController();
  readonly #elector: LeaderElector | undefined;
  readonly #queue: WorkQueue;
  readonly #events: EventRecorder;
  readonly #problems: ProblemReporter;
  readonly #status: StatusWriter;
  readonly #compute: ComputeClient;
  readonly #engine: AssignmentEngine;
  readonly #drift: DriftRepair;
  readonly #reconciler: AssignedIdentityReconciler;
  readonly #servers: RunningHttpServer[] = [];
  #probeUrl: string | undefined;
  #metricsUrl: string | undefined;
  #ready = false;
  #stopped = false;
  /** A term's work (queue, status writer) is running: set by #startLeading, cleared by #stopLeading. */
  #leading = false;
  readonly #legacyByNode = new Map<string, Set<string>>();
  /** Each AzureIdentity's spec, labels and annotations as last seen: status writes (availableReplicas) are not edits. */
  readonly #identityEdits = new Map<string, string>();

  constructor(options: MicOptions) {
    const config = resolveMicConfig(options);
    this.#config = config;
    const clock: Clock = options.clock ?? systemClock;
    const logger = (this.logger = options.logger ?? pino({ name: "podidentity-mic" }));
    const leadership = this.#leadership;
    this.#immutable = new Set(config.immutableUserMsis);
    const isImmutable = (id: string | null | undefined): boolean => this.isImmutable(id);

    // state/: what MIC knows of the cluster.
    this.desired = new DesiredState({
      forceNamespaced: config.forceNamespaced,
      nodeTarget: (node) => nodeComputeTarget(node, { subscriptionId: config.subscriptionId, resourceGroup: config.resourceGroup }),
    });
    this.index = new AssignedIdentityIndex((nodeName) => this.desired.nodeTarget(nodeName));
    this.metrics = new MicMetrics({ defaultMetrics: config.defaultMetrics, pending: () => this.pendingAssignments() });
    const client = (this.#client = new KubeClient(config.kubeConfig, { userAgent: "podidentity-mic" }));
    const informers = (this.#informers = createMicInformers(client, { clock, logger }));
    const writer = new AssignedIdentityWriter({ client, index: this.index, cache: informers.assigned, leadership });

    // runtime/: the work queue's results become metrics; a terminal error is not retried.
    const queue = (this.#queue = new WorkQueue({
      concurrency: config.reconcileConcurrency,
      clock,
      isTerminal: (error) => error instanceof TerminalError,
      onRun: (_key, outcome, durationMs, queuedMs) => {
        this.metrics.reconcileTotal.inc({ result: outcome });
        this.metrics.reconcileDuration.observe(durationMs / 1000);
        this.metrics.queueLatency.observe(queuedMs / 1000);
      },
    }));
    this.#events = new EventRecorder(client, { clock, logger, canWrite: () => leadership.isLeader, instance: config.leaderElection.identity, defer: () => queue.busy });
    this.#problems = new ProblemReporter(this.#events);
    this.#elector = config.leaderElection.enabled
      ? new LeaderElector(client, { ...config.leaderElection, clock, logger }, { onStartedLeading: (signal) => this.#startLeading(signal), onStoppedLeading: () => void this.#stopLeading() })
      : undefined;

    // assignment/ and arm/: one loop per VM/VMSS; the planner reads state/ and writes the added-by record first.
    this.#compute = new ComputeClient({
      endpoint: config.armEndpoint,
      scope: config.armScope,
      credential: config.credential,
      clock,
      logger,
      writeBudget: new WriteBudget(config.writeBudget, clock),
      observer: this.metrics,
      lroPollIntervalMs: config.lroPollIntervalMs,
      ...(config.armDispatcher && { dispatcher: config.armDispatcher }),
    });
    const record = new AddedByRecord(this.index, writer);
    this.#engine = new AssignmentEngine({
      compute: this.#compute,
      planner: createAssignmentPlanner({
        desired: this.desired,
        index: this.index,
        record,
        isImmutable,
        wake: (key) => queue.add(key),
        clientIdMismatch: (m) => this.#problems.clientIdMismatch(m),
      }),
      clock,
      logger,
      leadership,
      batchWindowMs: config.batchWindowMs,
      batchQuietMs: config.batchQuietMs,
      batchMaxWaitMs: config.batchMaxWaitMs,
      stateTtlMs: config.stateTtlMs,
      identityBackoffInitialMs: config.identityBackoffInitialMs,
      identityBackoffMaxMs: config.identityBackoffMaxMs,
      targetBackoffInitialMs: config.targetBackoffInitialMs,
      targetBackoffMaxMs: config.targetBackoffMaxMs,
      onSyncDone: (_target, outcome, ms) => this.metrics.syncDuration.observe({ result: outcome }, ms / 1000),
    });
    this.#drift = new DriftRepair({
      intervalMs: config.identityAssignmentReconcileIntervalMs,
      clock,
      logger,
      targets: () => this.#targets(),
      refresh: (target) => this.#engine.request(target, { refresh: true }),
    });

    // reconcile/: one AzureAssignedIdentity at a time, and the identities' and bindings' status.
    this.#reconciler = new AssignedIdentityReconciler({
      desired: this.desired,
      index: this.index,
      engine: this.#engine,
      writer,
      record,
      events: this.#events,
      clock,
      logger,
      isImmutable,
      onAssigned: (seconds) => this.metrics.timeToAssigned.observe(seconds),
      pollIntervalMs: config.pollIntervalMs,
    });
    this.#status = new StatusWriter(client, {
      clock,
      logger,
      index: this.index,
      canWrite: () => leadership.isLeader,
      signal: () => leadership.signal,
      identities: () => informers.identities.store,
      bindings: () => informers.bindings.store,
    });
    this.#wireInformers();
  }

  get isLeader(): boolean {
    return this.#leadership.isLeader;
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

  /** Starts informers, probes and leader election; resolves once the informers have synced, or once stop() is called. */
  async start(): Promise<void> {
    const config = this.#config;
    const informers = Object.values(this.#informers) as Array<MicInformers[keyof MicInformers]>;
    for (const informer of informers) informer.start();

    if (config.httpProbePort !== undefined) {
      const server = await startProbeServer({ ready: () => this.#ready, live: () => !this.#stopped, isLeader: () => this.isLeader, notReadyReason: () => this.#elector?.problem }, config.httpProbePort, config.probeHost);
      this.#servers.push(server);
      this.#probeUrl = server.url;
    }
    if (config.prometheusPort !== undefined) {
      const server = await startMetricsServer(this.metrics.registry, config.prometheusPort, config.probeHost);
      this.#servers.push(server);
      this.#metricsUrl = server.url;
    }

    try {
      await Promise.all(informers.map((i) => i.synced));
    } catch (error) {
      if (!this.#stopped) throw error;
    }
    // Stopped while the informers listed (a SIGTERM during start): no lease, no writes.
    if (this.#stopped) return;
    // Objects listed before their nodes: resolve their VM/VMSS now that every informer has synced.
    for (const object of this.#informers.assigned.store.values()) this.#indexAssigned(object);
    this.#ready = true;
    this.logger.info({ assignments: this.index.size, desired: this.desired.size }, "informers synced");

    if (this.#elector) this.#elector.start();
    else this.#startLeading(this.#alwaysLeader.signal);
  }

  /** Stops writing at once, releases the lease, stops informers and servers. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#alwaysLeader.abort(new Error("stopping"));
    await this.#elector?.stop();
    await this.#stopLeading();
    await Promise.all(Object.values(this.#informers).map((i: MicInformers[keyof MicInformers]) => i.stop()));
    await Promise.all(this.#servers.map((s) => s.close()));
    await this.#client.close();
    this.#ready = false;
  }

  /** True when nothing is being reconciled or sent to ARM right now (tests wait for this). */
  get quiescent(): boolean {
    return !this.#queue.busy && this.#engine.busyTargets() === 0;
  }

  /** Reconciles waiting in the queue, ready or delayed (a retry's backoff, a requeue) — tests assert on it. */
  get queuedReconciles(): number {
    return this.#queue.length;
  }

  /** Runs one drift-repair pass now (tests; the interval runs it otherwise). */
  driftRepairNow(): number {
    return this.isLeader ? this.#drift.pass() : 0;
  }

  /** Waits for queued Kubernetes Events to be written (tests). */
  async flushEvents(): Promise<void> {
    await this.#events.flush();
  }

  /** Informer events → state/ (and the queue). The informers themselves are built in state/informers.ts. */
  #wireInformers(): void {
    const { pods, nodes, identities, bindings, assigned } = this.#informers;
    const desired = this.desired;
    desired.onChange((change) => {
      for (const key of change.keys) this.#queue.add(key);
      this.#problems.skipped(change.skipped);
    });
    pods.addHandlers({ add: (p) => desired.upsertPod(p), update: (p) => desired.upsertPod(p), delete: (p) => desired.deletePod(p) });
    const onNode = (n: NodeObject): void => {
      desired.upsertNode(n);
      for (const key of this.#legacyByNode.get(nameOf(n)) ?? []) {
        const object = assigned.store.get(key);
        if (object) this.#indexAssigned(object);
      }
    };
    nodes.addHandlers({ add: onNode, update: onNode, delete: (n) => desired.deleteNode(n) });
    const onIdentity = (raw: KubeObject): void => {
      const n = normalizeAzureIdentity(raw);
      this.#problems.invalid("AzureIdentity", n);
      desired.upsertIdentity(n.object);
      this.#identityEdited(n.object);
    };
    identities.addHandlers({
      add: onIdentity,
      update: onIdentity,
      delete: (raw) => {
        const identity = normalizeAzureIdentity(raw).object;
        this.#identityEdits.delete(`${namespaceOf(identity)}/${nameOf(identity)}`);
        desired.deleteIdentity(identity);
      },
    });
    const onBinding = (raw: KubeObject): void => {
      const n = normalizeAzureIdentityBinding(raw);
      this.#problems.invalid("AzureIdentityBinding", n);
      desired.upsertBinding(n.object);
    };
    bindings.addHandlers({ add: onBinding, update: onBinding, delete: (raw) => desired.deleteBinding(normalizeAzureIdentityBinding(raw).object) });
    assigned.addHandlers({
      add: (object) => this.#indexAssigned(object),
      update: (object) => this.#indexAssigned(object),
      delete: (object) => {
        const key = `${namespaceOf(object)}/${nameOf(object)}`;
        const old = this.index.delete(key);
        if (old) this.#assignedChanged(old);
        this.#queue.add(key);
      },
    });
  }

  #indexAssigned(object: AzureAssignedIdentity): void {
    const item = this.index.upsert(object);
    const node = item.object.spec.nodename;
    if (node && item.fingerprint === undefined) {
      let set = this.#legacyByNode.get(node);
      if (!set) this.#legacyByNode.set(node, (set = new Set()));
      set.add(item.key);
    }
    this.#assignedChanged(item);
    this.#queue.add(item.key);
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
    if (!this.isLeader || !resourceId) return;
    const retried = this.#engine.retryNow(canonicalResourceId(resourceId));
    if (retried > 0) this.logger.info({ identity: key, targets: retried }, "AzureIdentity changed: retrying its failed assignments now");
  }

  #assignedChanged(item: IndexedAssignment): void {
    if (item.identityKey) this.#status.enqueue("identity", item.identityKey);
    if (item.bindingKey) this.#status.enqueue("binding", item.bindingKey);
  }

  #targets(): ComputeTarget[] {
    const targets = new Map<string, ComputeTarget>();
    for (const t of this.desired.targets()) targets.set(t.key, t);
    for (const item of this.index.values()) if (item.target && !targets.has(item.target.key)) targets.set(item.target.key, item.target);
    return [...targets.values()];
  }

  #startLeading(signal: AbortSignal): void {
    if (this.#stopped) return;
    this.#leading = true;
    this.#leadership.begin(signal);
    this.metrics.leader.set(1);
    this.metrics.leaderTransitions.inc();
    this.#engine.reset();
    this.#reconciler.reset();
    // Fetch the ARM token now, not on the first assignment's critical path.
    this.#compute.warmUp(signal).catch((error: unknown) => this.logger.warn({ err: describe(error) }, "could not get an ARM token yet"));
    const queue = this.#queue;
    queue.start((key) => this.#reconciler.reconcile(key));
    for (const key of new Set([...this.desired.keys(), ...this.index.keys()])) queue.add(key);
    for (const kind of ["identity", "binding"] as const) this.#status.enqueueAll(kind);
    this.#status.start();
    this.#drift.start(signal);
    const { identities, bindings } = this.#informers;
    this.#problems.reportAll(identities.store.values(), bindings.store.values(), this.desired.allSkipped(), { identity: normalizeAzureIdentity, binding: normalizeAzureIdentityBinding });
    this.logger.info({ assignments: this.index.size, desired: this.desired.size }, "leading: reconciling");
  }

  async #stopLeading(): Promise<void> {
    if (!this.#leading) return;
    this.#leading = false;
    this.#leadership.end();
    this.metrics.leader.set(0);
    await this.#queue.stop();
    await this.#status.stop();
  }
}
