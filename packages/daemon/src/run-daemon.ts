import { errorLogFields } from "./daemon-error";

/** What {@link runDaemon} logs through (pino's methods). */
export interface DaemonLogger {
  info(fields: object, message: string): void;
  error(fields: object, message: string): void;
  fatal(fields: object, message: string): void;
}

/** The signals a daemon stops on: the kubelet's SIGTERM, and Ctrl-C when run by hand. */
export type StopSignal = "SIGTERM" | "SIGINT";

/** What {@link runDaemon} needs of the process. `process` itself; tests give their own. */
export interface DaemonHost {
  on(event: StopSignal, listener: () => void): unknown;
  on(event: "uncaughtException" | "unhandledRejection", listener: (error: unknown) => void): unknown;
  exit(code: number): void;
}

export interface RunDaemonOptions {
  /** The daemon in log messages: "NMI", "MIC". */
  name: string;
  /** Give it a synchronous destination: an asynchronous one can lose the last lines at `process.exit`. */
  logger: DaemonLogger;
  /** Brings the daemon up. A signal may arrive while it runs: `stop` is then called, and must end it. */
  start(): Promise<void>;
  /**
   * Graceful shutdown, called once, on the first signal (also during `start`). What the daemon leaves behind is its
   * own decision: NMI keeps its iptables rules unless it is being uninstalled.
   */
  stop(signal: StopSignal): Promise<void>;
  /**
   * The bound on `stop`: past it the process exits 1, leaving whatever `stop` had not yet undone. Keep it inside
   * the pod's termination grace period (30 s by default), after which the kubelet kills the process anyway.
   */
  stopTimeoutMs: number;
  host?: DaemonHost;
}

/**
 * Runs a daemon process: `start`, then `stop` on SIGTERM or SIGINT, and exit. Every way out is one JSON line and
 * an exit code, and none of them undoes more than `stop` decided to:
 * - `start` fails (before any signal): a fatal line, exit 1. `stop` is not called — a failed NMI leaves its
 *   guards in place (fail closed), and the kubelet restarts it.
 * - a signal: `stop` runs (once; a second signal is logged and waits for it); it resolves → exit 0, it throws →
 *   exit 1, it outlasts `stopTimeoutMs` → exit 1. A `start` still running is abandoned, its failure ignored.
 * - an uncaught exception or unhandled rejection: a fatal line, exit 1, no `stop` (the state it would tear down
 *   is what just broke); Node's default would print a stack trace instead of a log line, and keep no JSON shape.
 */
export function runDaemon(options: RunDaemonOptions): void {
  const { name, logger, stopTimeoutMs } = options;
  const host = options.host ?? process;
  let exited = false;
  let stopping = false;
  const exit = (code: number): void => {
    if (exited) return;
    exited = true;
    host.exit(code);
  };

  const shutdown = (signal: StopSignal): void => {
    if (stopping) {
      logger.info({ signal }, `${name} is already shutting down: waiting for it (at most ${stopTimeoutMs} ms from the first signal)`);
      return;
    }
    stopping = true;
    logger.info({ signal }, "shutting down");
    const deadline = setTimeout(() => {
      logger.error({ signal, stopTimeoutMs }, `${name}'s shutdown did not finish within ${stopTimeoutMs} ms: exiting`);
      exit(1);
    }, stopTimeoutMs); // not unref'd: a stop() waiting on nothing would otherwise end the process with code 0
    let stopped: Promise<void>;
    try {
      stopped = options.stop(signal);
    } catch (error) {
      stopped = Promise.reject(error);
    }
    stopped.then(
      () => {
        clearTimeout(deadline);
        exit(0);
      },
      (error: unknown) => {
        clearTimeout(deadline);
        logger.error(errorLogFields(error), `${name}'s shutdown failed`);
        exit(1);
      },
    );
  };

  const crash = (kind: string) => (error: unknown) => {
    logger.fatal(errorLogFields(error), `${name} crashed: ${kind}`);
    exit(1);
  };

  host.on("SIGTERM", () => shutdown("SIGTERM"));
  host.on("SIGINT", () => shutdown("SIGINT"));
  host.on("uncaughtException", crash("uncaught exception"));
  host.on("unhandledRejection", crash("unhandled promise rejection"));

  let started: Promise<void>;
  try {
    started = options.start();
  } catch (error) {
    started = Promise.reject(error);
  }
  started.catch((error: unknown) => {
    if (stopping) return; // stopped while starting: how that ends is stop's outcome
    logger.fatal(errorLogFields(error), `${name} could not start`);
    exit(1);
  });
}
