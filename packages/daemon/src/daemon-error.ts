/**
 * The daemons' errors: one base class whose `code` is namespaced `<daemon>.<what>` (`mic.arm_refused`,
 * `nmi.no_binding`) — stable strings for logs and metrics, as undici's `UND_ERR_*` are. They are not wire
 * formats: NMI's answers to pods keep the IMDS `error` codes of docs/contract.md's Errors table.
 */
export class DaemonError extends Error {
  /** `<daemon>.<what>`, lower case: the daemon (`mic`, `nmi`) and what went wrong, in snake case. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    if (!DAEMON_ERROR_CODE.test(code)) throw new TypeError(`DaemonError: code must look like "mic.arm_refused", got "${code}"`);
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

const DAEMON_ERROR_CODE = /^[a-z][a-z0-9]*(?:\.[a-z0-9]+(?:_[a-z0-9]+)*)+$/;

/**
 * An error as log fields: its message and code (never its cause's body, which may hold a token or a secret).
 * The shape both daemons' fatal lines use: `{"level":60,…,"err":"…","code":"…","msg":"NMI could not start"}`.
 */
export function errorLogFields(error: unknown): { err: string; code?: string } {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? { err: message, code } : { err: message };
}

/** What `exitOnStartupError` needs of a logger (pino's `fatal`). */
export interface FatalLogger {
  fatal(fields: object, message: string): void;
}

/**
 * A daemon that cannot start: one JSON fatal line (`errorLogFields`) and exit code 1, so a crash-looping pod's
 * log says why in the same shape as every other line. Give it a logger with a synchronous destination: an
 * asynchronous one can lose the line at `process.exit`.
 */
export function exitOnStartupError(logger: FatalLogger, error: unknown, message: string): never {
  logger.fatal(errorLogFields(error), message);
  process.exit(1);
}
