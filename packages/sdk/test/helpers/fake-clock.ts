import { setImmediate as nextTurn } from "node:timers/promises";

/**
 * Drives the credential's injected now()/sleep(): sleeps advance the clock instantly and are recorded, so a
 * 90 s retry budget runs in milliseconds. `hold()` makes the next sleeps wait until released or aborted.
 */
export class FakeClock {
  nowMs = Date.parse("2026-11-23T12:00:00Z");
  readonly sleeps: number[] = [];
  private holding = false;
  private sleepingListeners: Array<() => void> = [];

  readonly now = (): number => this.nowMs;

  readonly sleep = async (ms: number, signal: AbortSignal): Promise<void> => {
    signal.throwIfAborted();
    this.sleeps.push(ms);
    for (const listener of this.sleepingListeners.splice(0)) listener();
    if (this.holding) {
      await new Promise<void>((_, reject) => {
        signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      });
    }
    this.nowMs += ms;
    await nextTurn();
    signal.throwIfAborted();
  };

  advance(ms: number): void {
    this.nowMs += ms;
  }

  /** From now on sleeps block until their signal aborts (for abort-mid-backoff tests). */
  hold(): void {
    this.holding = true;
  }

  /** Resolves when the next sleep starts. */
  nextSleep(): Promise<void> {
    return new Promise((resolve) => this.sleepingListeners.push(resolve));
  }
}
