/** A scheduled callback that can be cancelled. */
export interface TimerHandle {
  clear(): void;
}

/**
 * Time for what the informer schedules (backoff between retries), injectable so tests drive it without waiting.
 * MIC adapts its own clock to this with `clockFromSleep`.
 */
export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): TimerHandle;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => {
    const timer = setTimeout(callback, ms);
    return { clear: () => clearTimeout(timer) };
  },
};

/** A Clock from a `now()` and an abortable `sleep(ms, signal)` (what MIC's clock offers). */
export function clockFromSleep(source: { now(): number; sleep(ms: number, signal?: AbortSignal): Promise<void> }): Clock {
  return {
    now: () => source.now(),
    setTimeout: (callback, ms) => {
      const abort = new AbortController();
      void source.sleep(ms, abort.signal).then(() => {
        if (!abort.signal.aborted) callback();
      });
      return { clear: () => abort.abort() };
    },
  };
}
