import type { IncomingMessage } from "node:http";
import { LRUCache } from "lru-cache";
import type { Logger } from "pino";
import { redactId } from "../errors";

export interface RefusalLogOptions {
  logger: Logger;
  /** `namespace/name` of the pod with this source address on the node, if one is known. */
  podOf: (ip: string) => string | undefined;
  now: () => number;
  /** Lines per pod per window; the rest of the window's refusals are counted and reported with the next line. */
  linesPerWindow?: number;
  windowMs?: number;
  /** Sources remembered at once (a pod flood cannot grow this without bound). */
  maxSources?: number;
}

export const DEFAULT_REFUSAL_LOG_OPTIONS = {
  linesPerWindow: 5,
  windowMs: 60_000,
  maxSources: 4096,
} as const;

interface SourceWindow {
  startedMs: number;
  logged: number;
  suppressed: number;
}

/** The identity a request named, redacted: the first of client_id, msi_res_id / mi_res_id, object_id. */
function requestedIdentity(url: string | undefined): string | undefined {
  const q = url?.indexOf("?") ?? -1;
  if (url === undefined || q < 0) return undefined;
  const params = new URLSearchParams(url.slice(q + 1));
  for (const name of ["client_id", "msi_res_id", "mi_res_id", "object_id"]) {
    const value = params.get(name)?.trim();
    if (value) return `${name}=${redactId(value)}`;
  }
  return undefined;
}

/**
 * Operators' view of what NMI refused (403s and 503s): one `warn` line per refusal with the pod's namespace/name,
 * the error code and the redacted identity asked for — at the default log level, because a pod that cannot get
 * its token is the first thing an operator debugs. Rate-limited per source so one looping pod cannot flood the
 * node's logs: at most `linesPerWindow` lines per pod per window, and the next line says how many were left out.
 */
export class RefusalLog {
  readonly #o: Required<Omit<RefusalLogOptions, "logger" | "podOf" | "now">> & Pick<RefusalLogOptions, "logger" | "podOf" | "now">;
  readonly #windows: LRUCache<string, SourceWindow>;

  constructor(options: RefusalLogOptions) {
    this.#o = { ...DEFAULT_REFUSAL_LOG_OPTIONS, ...options };
    for (const key of ["linesPerWindow", "windowMs", "maxSources"] as const) {
      if (!(Number.isInteger(this.#o[key]) && this.#o[key] > 0)) throw new RangeError(`RefusalLog: ${key} must be a positive integer, got ${this.#o[key]}`);
    }
    this.#windows = new LRUCache({ max: this.#o.maxSources });
  }

  /** Records a refusal answered to `req`; logs it unless its pod has used up this window's lines. */
  record(req: IncomingMessage, ip: string, status: number, code: string, route: string, description: string): void {
    const pod = ip === "" ? undefined : this.#o.podOf(ip);
    const source = pod ?? ip;
    const now = this.#o.now();
    let window = this.#windows.get(source);
    let suppressedBefore = 0;
    if (window === undefined || now - window.startedMs >= this.#o.windowMs) {
      suppressedBefore = window?.suppressed ?? 0;
      window = { startedMs: now, logged: 0, suppressed: 0 };
      this.#windows.set(source, window);
    }
    if (window.logged >= this.#o.linesPerWindow) {
      window.suppressed++;
      return;
    }
    window.logged++;
    const identity = requestedIdentity(req.url);
    this.#o.logger.warn(
      {
        pod: pod ?? null,
        remote: ip,
        route,
        status,
        code,
        ...(identity !== undefined && { identity }),
        ...(suppressedBefore > 0 && { suppressedBefore }),
        reason: description,
      },
      "request refused",
    );
  }
}
