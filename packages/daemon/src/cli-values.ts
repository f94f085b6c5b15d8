/**
 * Command-line values as aad-pod-identity v1.8's Go programs read them, so its manifests' arguments mean the same
 * to NMI, MIC and the installer. Each parser throws {@link CliValueError} with a message fit for the user.
 */

/**
 * A value a flag cannot take. It carries commander's `code` and `exitCode` for an invalid argument, so a parser
 * used as a commander option parser reports "option '--x <v>' argument 'y' is invalid. <message>" and exits 1,
 * exactly as commander's own InvalidArgumentError does, without this package depending on commander.
 */
export class CliValueError extends Error {
  override readonly name = "CliValueError";
  readonly code = "commander.invalidArgument";
  readonly exitCode = 1;
}

const TRUE = new Set(["1", "t", "T", "TRUE", "true", "True"]);
const FALSE = new Set(["0", "f", "F", "FALSE", "false", "False"]);

/**
 * A boolean as Go's `strconv.ParseBool` reads it (`1 t T TRUE true True`, `0 f F FALSE false False`), plus `yes`/`no`
 * in any case. A flag given without a value (`--flag`) is true, as in Go.
 */
export function parseBool(value: string | boolean | undefined): boolean {
  if (value === undefined || value === true) return true;
  if (value === false) return false;
  const v = value.trim();
  if (TRUE.has(v) || /^yes$/i.test(v)) return true;
  if (FALSE.has(v) || /^no$/i.test(v)) return false;
  throw new CliValueError(`expected true or false, got "${value}"`);
}

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, "μs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION_PART = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;

/**
 * A duration in milliseconds, as Go's `time.ParseDuration` reads it — `15s`, `500ms`, `3m`, `1h30m`, `1.5h`, `0` —
 * plus a bare number meaning seconds (`20`), which podidentity's own flags accepted before. Negative durations are
 * refused: no flag here means anything by one.
 */
export function parseDuration(value: string): number {
  const text = value.trim();
  if (/^(\d+(?:\.\d+)?)$/.test(text)) return Number(text) * 1000;
  if (text.startsWith("-")) throw new CliValueError(`a duration cannot be negative, got "${value}"`);
  let rest = text.startsWith("+") ? text.slice(1) : text;
  if (rest === "") throw new CliValueError(`expected a duration like 15s, 3m or 1h30m, got "${value}"`);
  let total = 0;
  while (rest.length > 0) {
    const m = DURATION_PART.exec(rest);
    if (m === null) throw new CliValueError(`expected a duration like 15s, 3m or 1h30m, got "${value}"`);
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return total;
}

/** Milliseconds as a duration `parseDuration` reads back (`180000` → `3m`, `5400000` → `1h30m`, `500` → `500ms`), for help texts. */
export function formatDuration(ms: number): string {
  if (!(Number.isFinite(ms) && ms >= 0)) throw new RangeError(`formatDuration: expected a duration >= 0 in ms, got ${ms}`);
  if (ms === 0) return "0s";
  let rest = ms;
  let out = "";
  for (const [unit, size] of [["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * size;
  }
  return rest > 0 ? `${out}${rest}ms` : out;
}

/** An integer, refusing `1.5`, `0x10`, `1e3` and empty text (which `Number` would take). */
export function parseInteger(value: string): number {
  const text = value.trim();
  if (!/^[+-]?\d+$/.test(text)) throw new CliValueError(`expected an integer, got "${value}"`);
  return Number(text);
}

/** A TCP port 0–65535 (0: any free port, where the program allows it). */
export function parsePort(value: string): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value.trim()) : Number.NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65_535) throw new CliValueError(`expected a port number 0-65535, got "${value}"`);
  return n;
}

/** A comma-separated list: items trimmed, empty items dropped (`"a, b,"` → `["a", "b"]`). */
export function parseCsv(value: string): string[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/**
 * Namespaced matching as v1.8 chose it: the flag (`--forceNamespaced`, or our `--force-namespaced`) wins, then env
 * `FORCENAMESPACED` (v1.8's chart sets it), then the program's default.
 */
export function forceNamespacedSetting(flag: boolean | undefined, env: Record<string, string | undefined>, defaultValue: boolean): boolean {
  if (flag !== undefined) return flag;
  const fromEnv = env["FORCENAMESPACED"];
  if (fromEnv !== undefined && fromEnv.trim() !== "") {
    try {
      return parseBool(fromEnv);
    } catch (error) {
      throw new CliValueError(`env FORCENAMESPACED: ${(error as Error).message}`);
    }
  }
  return defaultValue;
}

/** What `orUsageError` needs of a commander Command: its `error`, which prints the message and exits. */
export interface UsageErrorReporter {
  error(message: string, options: { exitCode: number; code: string }): never;
}

/**
 * `read()`'s value, or a usage error through the program (message on stderr, exit 1) when it throws — for values
 * read outside commander's option parsers (the legacy flags, env FORCENAMESPACED).
 */
export function orUsageError<T>(program: UsageErrorReporter, read: () => T): T {
  try {
    return read();
  } catch (error) {
    return program.error(`error: ${(error as Error).message}`, { exitCode: 1, code: "commander.invalidArgument" });
  }
}
