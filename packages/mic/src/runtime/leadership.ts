const NOT_LEADING = AbortSignal.abort(new Error("not the leader"));

/**
 * This replica's current term as leader: one AbortSignal that every write (ARM PATCH, API write, Event) carries and
 * that aborts the moment the term ends. Between terms the signal is an aborted one, so nothing is written.
 */
export class Leadership {
  #signal: AbortSignal = NOT_LEADING;

  /** The current term's signal (aborted between terms). */
  get signal(): AbortSignal {
    return this.#signal;
  }

  get isLeader(): boolean {
    return !this.#signal.aborted;
  }

  /** A term begins; it ends when `signal` aborts or `end()` is called. */
  begin(signal: AbortSignal): void {
    this.#signal = signal;
  }

  end(): void {
    this.#signal = NOT_LEADING;
  }
}
