/**
 * Fault injection and the request log: tests make the server fail the next N matching requests with a given
 * Status, add latency, and read back exactly which user made which verb on which resource.
 */
import { KubeStatusError } from "./status-errors";

export type KubeVerb = "get" | "list" | "watch" | "create" | "update" | "patch" | "delete" | "deletecollection";

export interface RequestRecord {
  /** Milliseconds since the epoch (the server's clock). */
  time: number;
  user: string;
  method: string;
  path: string;
  /** The query string, without the leading "?". */
  query: string;
  /** Resource verb, or undefined for non-resource requests (discovery, OpenAPI, /version). */
  verb: KubeVerb | undefined;
  group: string | undefined;
  /** Plural resource name, e.g. `pods`. */
  resource: string | undefined;
  subresource: string | undefined;
  namespace: string | undefined;
  name: string | undefined;
  /** HTTP status of the response (for watches: of the response head). */
  status: number;
  /** Latency injected into this request by `addLatency` faults, in ms (0 when none matched). */
  injectedLatencyMs: number;
}

/** Which requests a fault or a count applies to; absent fields match anything. */
export interface RequestFilter {
  verb?: KubeVerb;
  resource?: string;
  group?: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  user?: string;
}

export interface FailureFault extends RequestFilter {
  /** How many matching requests fail; default 1. */
  count?: number;
  /** HTTP status; default 500. */
  code?: number;
  reason?: string;
  message?: string;
}

export interface LatencyFault extends RequestFilter {
  latencyMs: number;
}

export function matchesFilter(r: Omit<RequestRecord, "status" | "time" | "method" | "path" | "query">, f: RequestFilter): boolean {
  if (f.verb !== undefined && f.verb !== r.verb) return false;
  if (f.resource !== undefined && f.resource !== r.resource) return false;
  if (f.group !== undefined && f.group !== r.group) return false;
  if (f.subresource !== undefined && f.subresource !== r.subresource) return false;
  if (f.namespace !== undefined && f.namespace !== r.namespace) return false;
  if (f.name !== undefined && f.name !== r.name) return false;
  if (f.user !== undefined && f.user !== r.user) return false;
  return true;
}

const REASONS: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  409: "Conflict",
  410: "Expired",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
  504: "Timeout",
};

export class FaultInjector {
  #failures: Array<FailureFault & { remaining: number }> = [];
  #latencies: LatencyFault[] = [];

  failNext(fault: FailureFault): void {
    const count = fault.count ?? 1;
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`KubeApiServer.failNext: count must be a positive integer, got ${count}`);
    const code = fault.code ?? 500;
    if (!Number.isInteger(code) || code < 400 || code > 599) throw new RangeError(`KubeApiServer.failNext: code must be 400-599, got ${code}`);
    this.#failures.push({ ...fault, remaining: count });
  }

  addLatency(fault: LatencyFault): void {
    if (!Number.isFinite(fault.latencyMs) || fault.latencyMs < 0) throw new RangeError(`KubeApiServer.addLatency: latencyMs must be >= 0, got ${fault.latencyMs}`);
    this.#latencies.push(fault);
  }

  clear(): void {
    this.#failures = [];
    this.#latencies = [];
  }

  /** The injected failure for this request, consuming one of its count, or undefined. */
  takeFailure(r: Parameters<typeof matchesFilter>[0]): KubeStatusError | undefined {
    const f = this.#failures.find((x) => x.remaining > 0 && matchesFilter(r, x));
    if (!f) return undefined;
    f.remaining--;
    this.#failures = this.#failures.filter((x) => x.remaining > 0);
    const code = f.code ?? 500;
    const reason = f.reason ?? REASONS[code] ?? "InternalError";
    const message = f.message ?? `injected fault: ${reason}`;
    const details = code === 429 || code === 503 ? { retryAfterSeconds: 1 } : undefined;
    return new KubeStatusError(code, reason, message, details);
  }

  latencyMs(r: Parameters<typeof matchesFilter>[0]): number {
    return this.#latencies.filter((l) => matchesFilter(r, l)).reduce((sum, l) => sum + l.latencyMs, 0);
  }
}
