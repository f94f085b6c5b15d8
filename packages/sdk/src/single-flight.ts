interface Flight<T> {
  promise: Promise<T>;
  controller: AbortController;
  /** Callers currently waiting on this flight. */
  waiters: number;
  /** Started by a proactive refresh: it runs to completion even with nobody waiting. */
  background: boolean;
  settled: boolean;
}

/** The caller's signal: core-auth's AbortSignalLike (reason is read when present). */
export interface CallerSignal {
  readonly aborted: boolean;
  readonly reason?: unknown;
  addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: "abort", listener: () => void): void;
}

export interface WaitOptions {
  signal?: CallerSignal;
  timeoutMs?: number;
  /** The error for a caller whose signal fired. */
  onAbort: (reason: unknown) => Error;
  /** The error for a caller whose timeoutMs elapsed. */
  onTimeout: (timeoutMs: number) => Error;
}

/**
 * At most one upstream acquisition per key at a time; every caller for that key waits on it
 * (azure-sdk-for-net#37166: without this, hundreds of concurrent misses start a 429 retry storm).
 * Each caller can stop waiting (abort, timeout) without disturbing the others; the flight itself is only
 * cancelled once no caller is left waiting and nobody else (a background refresh) owns it.
 */
export class SingleFlight<T> {
  private readonly flights = new Map<string, Flight<T>>();

  /** Joins the flight for `key`, starting it with `work` if there is none, and waits on the caller's terms. */
  run(key: string, work: (signal: AbortSignal) => Promise<T>, wait: WaitOptions): Promise<T> {
    const flight = this.flights.get(key) ?? this.start(key, work, false);
    flight.waiters++;
    return this.waitFor(flight, wait).finally(() => {
      flight.waiters--;
      if (flight.waiters === 0 && !flight.background && !flight.settled) {
        // Nobody wants this result any more: stop retrying on behalf of no one.
        this.flights.delete(key);
        flight.controller.abort(new Error("PodIdentityCredential: every caller waiting for this token gave up."));
      }
    });
  }

  /** Starts a flight nobody waits on (a proactive refresh), unless one is already running for `key`. */
  runInBackground(key: string, work: (signal: AbortSignal) => Promise<T>): Promise<T> | undefined {
    if (this.flights.has(key)) return undefined;
    return this.start(key, work, true).promise;
  }

  has(key: string): boolean {
    return this.flights.has(key);
  }

  /** Cancels every flight (used when the credential is closed). */
  abortAll(reason: Error): void {
    for (const flight of this.flights.values()) flight.controller.abort(reason);
    this.flights.clear();
  }

  private start(key: string, work: (signal: AbortSignal) => Promise<T>, background: boolean): Flight<T> {
    const controller = new AbortController();
    const flight: Flight<T> = { promise: undefined as unknown as Promise<T>, controller, waiters: 0, background, settled: false };
    flight.promise = Promise.resolve()
      .then(() => work(controller.signal))
      .finally(() => {
        flight.settled = true;
        if (this.flights.get(key) === flight) this.flights.delete(key);
      });
    // Waiters observe the outcome; an abandoned or background flight's rejection must not be "unhandled".
    flight.promise.catch(() => undefined);
    this.flights.set(key, flight);
    return flight;
  }

  private waitFor(flight: Flight<T>, wait: WaitOptions): Promise<T> {
    const { signal, timeoutMs } = wait;
    if (signal === undefined && (timeoutMs === undefined || timeoutMs <= 0)) return flight.promise;
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = (): void => finish(() => reject(wait.onAbort(signal?.reason)));
      const finish = (settle: () => void): void => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        settle();
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeoutMs !== undefined && timeoutMs > 0) {
        timer = setTimeout(() => finish(() => reject(wait.onTimeout(timeoutMs))), timeoutMs);
      }
      flight.promise.then(
        (value) => finish(() => resolve(value)),
        (error: unknown) => finish(() => reject(error)),
      );
    });
  }
}
