import type { Clock } from "../clock";

export interface ReconcileResult {
  /** Run this key again after this long even if nothing changes (polling an external state). */
  requeueAfterMs?: number;
}

export interface WorkQueueOptions {
  concurrency: number;
  clock: Clock;
  /** Per-key backoff after a thrown error: initial doubling to max. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** An error retrying cannot fix: the key is not retried (until it is added again) and the run counts as `terminal`. */
  isTerminal?(error: unknown): boolean;
  /** Called after every run, for metrics and logs. */
  onRun?(key: string, outcome: RunOutcome, durationMs: number, queuedMs: number, error?: unknown): void;
}

export type RunOutcome = "success" | "requeue" | "error" | "terminal";

/**
 * A keyed work queue for level-based reconcilers: a key is queued at most once; a key added while it is being
 * processed runs once more afterwards (never twice at the same time); delayed adds keep the earliest time; a
 * thrown error backs the key off exponentially, a success resets it; a terminal error (`isTerminal`) drops the key
 * until it is added again (controller-runtime's TerminalError).
 */
export class WorkQueue {
  readonly #options: WorkQueueOptions;
  readonly #ready: string[] = [];
  readonly #queued = new Map<string, number>();
  readonly #processing = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #delayed = new Map<string, { atMs: number; abort: AbortController }>();
  readonly #failures = new Map<string, number>();
  #handler: ((key: string) => Promise<ReconcileResult | void>) | undefined;
  #active = 0;
  #stopped = false;
  #idleWaiters: Array<() => void> = [];

  constructor(options: WorkQueueOptions) {
    if (!(options.concurrency >= 1)) throw new RangeError(`WorkQueue: concurrency must be >= 1, got ${options.concurrency}`);
    this.#options = options;
  }

  /** Work ready or running now (delayed re-checks do not count). */
  get busy(): boolean {
    return this.#ready.length > 0 || this.#active > 0;
  }

  get length(): number {
    return this.#ready.length + this.#delayed.size;
  }

  start(handler: (key: string) => Promise<ReconcileResult | void>): void {
    this.#handler = handler;
    this.#stopped = false;
    this.#pump();
  }

  /** Stops taking work and forgets everything queued; waits for running handlers to return. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#ready.length = 0;
    this.#queued.clear();
    this.#dirty.clear();
    for (const d of this.#delayed.values()) d.abort.abort();
    this.#delayed.clear();
    this.#failures.clear();
    if (this.#active > 0) await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
  }

  add(key: string, delayMs = 0): void {
    if (this.#stopped) return;
    if (delayMs > 0) {
      const atMs = this.#options.clock.now() + delayMs;
      const existing = this.#delayed.get(key);
      if (existing && existing.atMs <= atMs) return;
      existing?.abort.abort();
      const abort = new AbortController();
      this.#delayed.set(key, { atMs, abort });
      void this.#options.clock.sleep(delayMs, abort.signal).then(() => {
        if (abort.signal.aborted) return;
        this.#delayed.delete(key);
        this.add(key);
      });
      return;
    }
    if (this.#processing.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#queued.set(key, this.#options.clock.now());
    this.#ready.push(key);
    this.#pump();
  }

  #pump(): void {
    const handler = this.#handler;
    if (!handler || this.#stopped) return;
    while (this.#active < this.#options.concurrency && this.#ready.length > 0) {
      const key = this.#ready.shift()!;
      const queuedAt = this.#queued.get(key) ?? this.#options.clock.now();
      this.#queued.delete(key);
      this.#processing.add(key);
      this.#active += 1;
      void this.#process(key, queuedAt, handler);
    }
  }

  async #process(key: string, queuedAt: number, handler: (key: string) => Promise<ReconcileResult | void>): Promise<void> {
    const { clock } = this.#options;
    const started = clock.now();
    let retryMs: number | undefined;
    try {
      const result = await handler(key);
      this.#failures.delete(key);
      retryMs = result?.requeueAfterMs;
      this.#options.onRun?.(key, retryMs === undefined ? "success" : "requeue", clock.now() - started, started - queuedAt);
    } catch (error) {
      if (this.#options.isTerminal?.(error)) {
        this.#failures.delete(key);
        this.#options.onRun?.(key, "terminal", clock.now() - started, started - queuedAt, error);
      } else {
        const failures = (this.#failures.get(key) ?? 0) + 1;
        this.#failures.set(key, failures);
        const initial = this.#options.initialBackoffMs ?? 1_000;
        retryMs = Math.min(this.#options.maxBackoffMs ?? 30_000, initial * 2 ** (failures - 1));
        this.#options.onRun?.(key, "error", clock.now() - started, started - queuedAt, error);
      }
    } finally {
      this.#processing.delete(key);
      this.#active -= 1;
    }
    if (this.#dirty.delete(key)) this.add(key);
    else if (retryMs !== undefined) this.add(key, retryMs);
    if (this.#active === 0) for (const resolve of this.#idleWaiters.splice(0)) resolve();
    this.#pump();
  }
}
