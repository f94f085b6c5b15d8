/** How often NMI tries its port again while another process holds it. */
export const DEFAULT_PORT_RETRY_INTERVAL_MS = 250;

export interface ListenWhenFreeOptions {
  /** Between two attempts while the port is held; default DEFAULT_PORT_RETRY_INTERVAL_MS. */
  retryIntervalMs?: number;
  /** Ends the wait: `listenWhenFree` then resolves with `listening: false`. */
  signal?: AbortSignal;
  /** Waits `ms` or until `signal` aborts (injectable so tests can drive the retries). */
  sleep?: (ms: number, signal: AbortSignal | undefined) => Promise<void>;
  /** Called once, at the first attempt that finds the port held (NMI logs and sets its metric there). */
  onWaiting?: (error: NodeJS.ErrnoException) => void;
}

export interface ListenWhenFreeResult {
  /** False when `signal` ended the wait before the port was free. */
  listening: boolean;
  /** Attempts that found the port held (0: it was free at once). */
  busyAttempts: number;
}

const abortableSleep = (ms: number, signal: AbortSignal | undefined): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted === true) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });

/**
 * The port handover (docs/contract.md, "Interception"): aad-pod-identity v1.8's NMI listens on 127.0.0.1 with the
 * same port, so while it runs on the node our listen fails with EADDRINUSE. A DaemonSet pod that exited there would
 * crash-loop and leave the node to v1.8 until someone noticed; instead NMI keeps trying every `retryIntervalMs`,
 * without a deadline (the wait is visible as the failed `/readyz` check `listener` and a metric), and takes over the
 * moment the port is free. Any other listen error is thrown as it is.
 */
export async function listenWhenFree(listen: () => Promise<void>, options: ListenWhenFreeOptions = {}): Promise<ListenWhenFreeResult> {
  const { signal } = options;
  const retryIntervalMs = options.retryIntervalMs ?? DEFAULT_PORT_RETRY_INTERVAL_MS;
  const sleep = options.sleep ?? abortableSleep;
  let busyAttempts = 0;
  for (;;) {
    if (signal?.aborted === true) return { listening: false, busyAttempts };
    try {
      await listen();
      return { listening: true, busyAttempts };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE") throw error;
      // Held by another process: wait for it, whatever it is; the caller's guard keeps pods away from IMDS meanwhile.
      if (busyAttempts++ === 0) options.onWaiting?.(error as NodeJS.ErrnoException);
    }
    await sleep(retryIntervalMs, signal);
  }
}
