import type { Logger } from "pino";
import type { ComputeClient, ComputeIdentityState } from "../arm/compute-client";
import type { ComputeTarget } from "../arm/compute-target";
import type { Clock } from "../clock";
import { classifyArmFailure, isOperationConflict } from "../arm/arm-failure";
import { describe, isAbortError } from "../errors";

export interface TargetObservation {
  readonly state: ComputeIdentityState;
  readonly atMs: number;
  /** The last request ticket whose sync completed: everything requested up to it has been applied. */
  readonly completed: number;
}

export interface IdentityFailure {
  /** `<ARM code>: <ARM message>`, for events. */
  readonly message: string;
  readonly attempts: number;
  readonly retryAtMs: number;
  /**
   * Set when retrying alone cannot fix it (arm/arm-failure.ts): ARM's code and message, and since when this same
   * error has been seen (kept across retries that fail the same way).
   */
  readonly permanent?: { readonly code: string; readonly message: string; readonly sinceMs: number };
}

/** What the engine reads about the cluster, each sync afresh (level-based). */
export interface AssignmentPlanner {
  /** Canonical IDs the pods on `target` need whose AzureAssignedIdentity exists (so ownership can be recorded). */
  addable(target: string): Iterable<string>;
  /** Canonical IDs no pod on `target` needs any more that MIC added and are not immutable. */
  removable(target: string): Iterable<string>;
  /** Client IDs never removed (`--immutable-user-msis`, plus the cluster identity). */
  isImmutable(clientId: string | null): boolean;
  /** Write-ahead: record on the API server that MIC is about to add `ids` to `target` (added-by-record.ts). Must succeed first. */
  recordAdding(target: string, ids: readonly string[]): Promise<void>;
  /** After every sync (success or not): wake the assignments on `target`. */
  synced(target: string): void;
  /** Drift repair: ARM shows `clientId` for `resourceId` on `target`. */
  observed?(target: string, state: ComputeIdentityState): void;
}

export interface AssignmentEngineOptions {
  compute: ComputeClient;
  planner: AssignmentPlanner;
  clock: Clock;
  logger: Logger;
  /** The leadership term: its signal aborts when leadership is lost, and every GET/PATCH in flight stops at once. */
  leadership: { readonly signal: AbortSignal };
  /** How long a first request waits for more to batch into the same PATCH. */
  batchWindowMs: number;
  /** While requests keep coming: further waits of this long, up to batchMaxWaitMs in all (see #settle). */
  batchQuietMs: number;
  batchMaxWaitMs: number;
  /** Reuse the state our own PATCH returned for this long instead of GETting again. */
  stateTtlMs: number;
  /** Backoff of one identity ARM refused (arm/arm-failure.ts): initial doubling to max. */
  identityBackoffInitialMs: number;
  identityBackoffMaxMs: number;
  /** Backoff of a whole VM/VMSS after other failures (5xx, network). */
  targetBackoffInitialMs: number;
  targetBackoffMaxMs: number;
  onSyncDone?(target: string, outcome: "success" | "error", durationMs: number): void;
}

interface TargetWork {
  target: ComputeTarget;
  requested: number;
  completed: number;
  refresh: boolean;
  running: boolean;
  state: ComputeIdentityState | undefined;
  stateAtMs: number;
  stateFromWrite: boolean;
  failures: Map<string, IdentityFailure>;
  errors: number;
  retryTimer: AbortController | undefined;
  retryAtMs: number;
}

/**
 * One work loop per VM/VMSS, none blocking another (v1.8 ran one blocking cycle over all of them). A request
 * while a PATCH is in flight only bumps the target's ticket, so everything asked for meanwhile goes into the next
 * PATCH together (coalescing). Each sync reads what is needed now (planner), diffs it against ARM's state, and
 * sends delta PATCHes; identities ARM refuses (named in its error, or all of a PATCH's additions for a permanent
 * error naming none: arm/arm-failure.ts) are set aside with their own backoff while the rest are applied, and
 * `retryNow` ends that backoff when their AzureIdentity is edited.
 */
export class AssignmentEngine {
  readonly #o: AssignmentEngineOptions;
  #work = new Map<string, TargetWork>();
  #ticket = 0;

  constructor(options: AssignmentEngineOptions) {
    this.#o = options;
  }

  /**
   * A new leadership term: forget the last term's VM/VMSS states, failures and backoffs (its loops end with its
   * signal) and start from what ARM shows.
   */
  reset(): void {
    for (const work of this.#work.values()) work.retryTimer?.abort();
    this.#work = new Map();
  }

  /** Asks for `target` to be brought in line; returns a ticket that `observation().completed` reaches when done. */
  request(target: ComputeTarget, options: { refresh?: boolean } = {}): number {
    if (this.#o.leadership.signal.aborted) return Number.POSITIVE_INFINITY;
    let work = this.#work.get(target.key);
    if (!work) {
      work = { target, requested: 0, completed: 0, refresh: false, running: false, state: undefined, stateAtMs: 0, stateFromWrite: false, failures: new Map(), errors: 0, retryTimer: undefined, retryAtMs: 0 };
      this.#work.set(target.key, work);
    }
    const ticket = ++this.#ticket;
    work.requested = ticket;
    if (options.refresh) work.refresh = true;
    if (!work.running) {
      work.running = true;
      void this.#loop(work);
    }
    return ticket;
  }

  observation(targetKey: string): TargetObservation | undefined {
    const work = this.#work.get(targetKey);
    if (!work?.state) return undefined;
    return { state: work.state, atMs: work.stateAtMs, completed: work.completed };
  }

  failure(targetKey: string, resourceId: string): IdentityFailure | undefined {
    return this.#work.get(targetKey)?.failures.get(resourceId);
  }

  /**
   * Forgets the backoff of `resourceId` (canonical) everywhere and syncs the VM/VMSSes it failed on now: its
   * AzureIdentity changed, so the next attempt may succeed. Returns how many were asked to sync.
   */
  retryNow(resourceId: string): number {
    let n = 0;
    for (const work of this.#work.values()) {
      if (!work.failures.delete(resourceId)) continue;
      this.request(work.target, { refresh: true });
      n++;
    }
    return n;
  }

  /** Targets with work queued or running (for the pending-assignments gauge and tests). */
  busyTargets(): number {
    let n = 0;
    for (const w of this.#work.values()) if (w.running) n++;
    return n;
  }

  async #loop(work: TargetWork): Promise<void> {
    const { clock } = this.#o;
    const signal = this.#o.leadership.signal;
    try {
      if (this.#o.batchWindowMs > 0) await this.#settle(work, signal);
      while (!signal.aborted && work.completed < work.requested) {
        const ticket = work.requested;
        const started = clock.now();
        try {
          const again = await this.#sync(work, signal);
          work.errors = 0;
          // When ARM refused some identities the loop runs again at once (completed stays behind).
          if (!again) work.completed = ticket;
          this.#o.onSyncDone?.(work.target.key, "success", clock.now() - started);
        } catch (error) {
          if (signal.aborted || isAbortError(error)) return;
          work.errors += 1;
          work.state = undefined;
          const delay = Math.min(this.#o.targetBackoffMaxMs, this.#o.targetBackoffInitialMs * 2 ** (work.errors - 1));
          this.#o.logger.warn({ target: work.target.resourceId, err: describe(error), retryInMs: delay }, "identity sync failed; backing off");
          this.#o.onSyncDone?.(work.target.key, "error", clock.now() - started);
          this.#o.planner.synced(work.target.key);
          await clock.sleep(delay, signal);
          continue;
        }
        this.#o.planner.synced(work.target.key);
      }
    } finally {
      work.running = false;
      // A request that raced with the loop's exit.
      if (!signal.aborted && work.completed < work.requested) {
        work.running = true;
        void this.#loop(work);
      }
    }
  }

  /**
   * Lets a burst of requests share the first PATCH: waits `batchWindowMs`, then, as long as requests arrived during
   * the last wait, `batchQuietMs` more, at most `batchMaxWaitMs` in all. A lone request waits only the window. A
   * PATCH holds the VM/VMSS for its whole operation, so a request that misses it waits a whole operation more:
   * the 1,000-pod burst in bench/run.ts is the measure.
   */
  async #settle(work: TargetWork, signal: AbortSignal): Promise<void> {
    const { clock } = this.#o;
    const started = clock.now();
    let seen = work.requested;
    await clock.sleep(this.#o.batchWindowMs, signal);
    for (;;) {
      const left = this.#o.batchMaxWaitMs - (clock.now() - started);
      if (work.requested === seen || left <= 0 || signal.aborted) return;
      seen = work.requested;
      await clock.sleep(Math.min(this.#o.batchQuietMs, left), signal);
    }
  }

  /** One pass; true when it must run again at once (ARM refused some identities: re-read and apply the rest). */
  async #sync(work: TargetWork, signal: AbortSignal): Promise<boolean> {
    const { clock, compute, planner, logger } = this.#o;
    const target = work.target;
    const now = clock.now();
    const cached = work.state && !work.refresh && work.stateFromWrite && now - work.stateAtMs < this.#o.stateTtlMs;
    let state: ComputeIdentityState;
    if (cached) {
      state = work.state!;
    } else {
      work.refresh = false;
      state = await compute.get(target, signal);
      this.#remember(work, state, false);
      planner.observed?.(target.key, state);
    }
    if (!state.exists || /^deleting$/i.test(state.provisioningState ?? "")) return false;
    // Another operation (another MIC's PATCH before a restart, an AKS upgrade) is still running: a PATCH now would
    // be refused (409 Conflict) or preempt it, and what GET shows is not in effect yet. Wait for it to end, then
    // plan from what it left.
    if (/^updating$/i.test(state.provisioningState ?? "")) {
      logger.info({ target: target.resourceId }, "another operation is running on the VM/VMSS; waiting for it before updating identities");
      ({ state } = await compute.waitForIdle(target, signal));
      this.#remember(work, state, false);
      planner.observed?.(target.key, state);
      if (!state.exists || /^deleting$/i.test(state.provisioningState ?? "")) return false;
    }

    const inBackoff = (id: string): boolean => (work.failures.get(id)?.retryAtMs ?? 0) > now;
    const add: string[] = [];
    const readd: string[] = [];
    for (const id of planner.addable(target.key)) {
      if (inBackoff(id)) continue;
      const held = state.userAssigned.get(id);
      if (!held) add.push(id);
      else if (held.clientId === null) readd.push(id);
    }
    const remove = [...planner.removable(target.key)].filter((id) => {
      const held = state.userAssigned.get(id);
      return held !== undefined && !planner.isImmutable(held.clientId);
    });
    for (const id of work.failures.keys()) if (state.userAssigned.get(id)?.clientId) work.failures.delete(id);
    if (add.length === 0 && remove.length === 0 && readd.length === 0) return false;

    await planner.recordAdding(target.key, add);
    logger.info({ target: target.resourceId, add: add.length, remove: remove.length, readd: readd.length }, "updating user-assigned identities");
    try {
      const next = await compute.apply(target, state, { add, remove, readd }, signal);
      this.#remember(work, next, true);
      for (const id of [...add, ...readd]) work.failures.delete(id);
      return false;
    } catch (error) {
      work.state = undefined;
      if (isOperationConflict(error)) {
        // An operation started between our read and our PATCH (409), or a newer one preempted ours: wait for the
        // running one and plan again at once. A conflict with nothing running is retried with the target's backoff.
        const { state: idle, waited } = await compute.waitForIdle(target, signal);
        this.#remember(work, idle, false);
        planner.observed?.(target.key, idle);
        logger.info({ target: target.resourceId, armCode: (error as { fields?: { armCode?: string } }).fields?.armCode, waited }, "ARM refused the PATCH while another operation ran; planning again");
        if (waited) return true;
        throw error;
      }
      const requested = new Set([...add, ...readd]);
      const failure = classifyArmFailure(error);
      // The identities to set aside: those ARM names; for a permanent error naming none (AuthorizationFailed on
      // the VM/VMSS itself), every identity this PATCH added, since none of them can be added until it is fixed.
      const named = failure.identityIds.filter((id) => requested.has(id));
      const blamed = named.length > 0 ? named : failure.permanent ? [...requested] : [];
      if (blamed.length === 0) throw error;
      const now = clock.now();
      let soonest = Number.POSITIVE_INFINITY;
      for (const id of blamed) {
        const previous = work.failures.get(id);
        const attempts = (previous?.attempts ?? 0) + 1;
        const delay = Math.min(this.#o.identityBackoffMaxMs, this.#o.identityBackoffInitialMs * 2 ** (attempts - 1));
        const same = previous?.permanent?.code === failure.code && previous.permanent.message === failure.message;
        work.failures.set(id, {
          message: `${failure.code}: ${failure.message}`,
          attempts,
          retryAtMs: now + delay,
          ...(failure.permanent && { permanent: { code: failure.code, message: failure.message, sinceMs: same ? previous!.permanent!.sinceMs : now } }),
        });
        soonest = Math.min(soonest, delay);
      }
      this.#scheduleRetry(work, soonest, signal);
      logger.warn({ target: target.resourceId, failed: blamed, armCode: failure.code, permanent: failure.permanent, retryInMs: soonest }, "ARM refused some identities; applying the others");
      return true;
    }
  }

  #remember(work: TargetWork, state: ComputeIdentityState, fromWrite: boolean): void {
    work.state = state;
    work.stateAtMs = this.#o.clock.now();
    work.stateFromWrite = fromWrite;
  }

  #scheduleRetry(work: TargetWork, delayMs: number, term: AbortSignal): void {
    const atMs = this.#o.clock.now() + delayMs;
    if (work.retryTimer && !work.retryTimer.signal.aborted && work.retryAtMs <= atMs) return;
    work.retryTimer?.abort();
    const timer = new AbortController();
    work.retryTimer = timer;
    work.retryAtMs = atMs;
    const signal = AbortSignal.any([timer.signal, term]);
    void this.#o.clock.sleep(delayMs, signal).then(() => {
      if (signal.aborted) return;
      work.retryTimer = undefined;
      this.request(work.target, { refresh: true });
    });
  }
}
