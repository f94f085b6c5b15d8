/**
 * Graceful deletion of pods, as kube-apiserver's pod strategy and the kubelet together make it look through the API:
 * a DELETE of a pod that runs on a node marks it (`deletionTimestamp`, `deletionGracePeriodSeconds`) and keeps it —
 * one MODIFIED watch event — while its containers get SIGTERM and their grace period; it goes away (DELETED) when
 * its kubelet reports the containers stopped with a second DELETE with `gracePeriodSeconds: 0`, or at the latest
 * when the grace period has passed on the testbed clock (standing in for the kubelet's SIGKILL, for pods no
 * kubelet runs).
 */
import type { KubeObject } from "./resources";
import { metaOf } from "./resources";
import { badRequest } from "./status-errors";

/** `spec.terminationGracePeriodSeconds` when a pod does not set it (Kubernetes's default). */
export const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS = 30;

type Json = Record<string, unknown>;

/**
 * `DeleteOptions.gracePeriodSeconds` as given (body, or the `gracePeriodSeconds` query parameter): an integer, or
 * undefined when absent. Anything else is a 400, as the API server's decoder answers.
 */
export function requestedGracePeriod(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  const n = typeof value === "string" && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isSafeInteger(n)) {
    throw badRequest(`json: cannot unmarshal ${JSON.stringify(value)} into Go struct field DeleteOptions.gracePeriodSeconds of type int64`);
  }
  return n;
}

/**
 * The grace period a DELETE gives a pod (the pod strategy's CheckGracefulDelete): the request's, else the pod's
 * `spec.terminationGracePeriodSeconds`, else 30; 0 for a pod never scheduled (no kubelet has to stop anything) or
 * already Succeeded/Failed; a negative request counts as 1.
 */
export function podGracePeriodSeconds(pod: KubeObject, requested: number | undefined): number {
  const spec = (pod["spec"] as Json | undefined) ?? {};
  const phase = ((pod["status"] as Json | undefined) ?? {})["phase"];
  if (typeof spec["nodeName"] !== "string" || spec["nodeName"] === "") return 0;
  if (phase === "Succeeded" || phase === "Failed") return 0;
  const fromSpec = spec["terminationGracePeriodSeconds"];
  const period = requested ?? (typeof fromSpec === "number" && Number.isSafeInteger(fromSpec) ? fromSpec : DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS);
  return period < 0 ? 1 : period;
}

/** Whether a new DELETE changes a pod that is already terminating: only a shorter grace period does (rest.BeforeDelete). */
export function shortensGracePeriod(pod: KubeObject, grace: number, requested: number | undefined): boolean {
  const current = metaOf(pod).deletionGracePeriodSeconds ?? 0;
  return requested !== undefined && grace < current;
}

/**
 * When each terminating pod's grace period ends, on the testbed clock, with one timer for the earliest. The timer
 * only wakes the check; whether a pod is due is always decided by the clock, so a ManualClock decides (and
 * `KubeApiServer.expireGracePeriods()` runs the check after it advanced).
 */
export class GraceDeadlines {
  readonly #deadlines = new Map<string, number>();
  readonly #now: () => number;
  readonly #onDue: () => void;
  #timer: NodeJS.Timeout | undefined;

  constructor(now: () => number, onDue: () => void) {
    this.#now = now;
    this.#onDue = onDue;
  }

  get size(): number {
    return this.#deadlines.size;
  }

  set(key: string, atMs: number): void {
    this.#deadlines.set(key, atMs);
    this.#schedule();
  }

  delete(key: string): void {
    if (this.#deadlines.delete(key)) this.#schedule();
  }

  /** Keys whose deadline has passed, removed from the set. */
  takeDue(): string[] {
    if (this.#deadlines.size === 0) return [];
    const now = this.#now();
    const due = [...this.#deadlines].filter(([, at]) => at <= now).map(([k]) => k);
    for (const k of due) this.#deadlines.delete(k);
    this.#schedule();
    return due;
  }

  clear(): void {
    this.#deadlines.clear();
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#deadlines.size === 0) return;
    const next = Math.min(...this.#deadlines.values());
    // A ManualClock that does not move leaves the delay where it was: the timer re-checks at that pace, harmlessly.
    this.#timer = setTimeout(() => this.#onDue(), Math.max(1, next - this.#now()));
    this.#timer.unref();
  }
}
