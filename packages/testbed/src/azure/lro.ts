import { randomUUID } from "node:crypto";
import type { Clock } from "../clock";

export type OperationStatus = "InProgress" | "Succeeded" | "Failed" | "Canceled";

/** What Compute's polling URL reports for an operation a newer one on the same VM/VMSS preempted. */
export const OPERATION_PREEMPTED: OperationError = { code: "OperationPreempted", message: "Operation execution has been preempted by a more recent operation." };

export interface OperationError {
  code: string;
  message: string;
}

/** One long-running operation; its status is a function of the clock, so nothing runs in the background. */
export interface Operation {
  readonly id: string;
  readonly subscriptionId: string;
  readonly location: string;
  readonly resourceId: string;
  readonly startMs: number;
  readonly endMs: number;
  readonly error: OperationError | undefined;
}

/**
 * Tracks ARM asynchronous operations (the `Azure-AsyncOperation` protocol): an operation is
 * InProgress until its end time on the clock, then Succeeded, or Failed when started with an error; Canceled
 * (OperationPreempted) from the moment a newer operation on the same resource preempted it.
 */
export class OperationTracker {
  readonly #clock: Clock;
  readonly #operations = new Map<string, Operation>();
  /** Operation ID → when a newer operation preempted it. */
  readonly #preempted = new Map<string, number>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  start(options: { subscriptionId: string; location: string; resourceId: string; durationMs: number; error?: OperationError }): Operation {
    const startMs = this.#clock.now();
    const operation: Operation = {
      id: randomUUID(),
      subscriptionId: options.subscriptionId,
      location: options.location,
      resourceId: options.resourceId,
      startMs,
      endMs: startMs + Math.max(0, options.durationMs),
      error: options.error,
    };
    this.#operations.set(operation.id, operation);
    return operation;
  }

  get(id: string): Operation | undefined {
    return this.#operations.get(id.toLowerCase());
  }

  /** Ends every operation of `resourceId` still running now, but `newerId`, as Canceled (OperationPreempted); returns how many. */
  preemptRunning(resourceId: string, newerId: string): number {
    const now = this.#clock.now();
    let n = 0;
    for (const operation of this.#operations.values()) {
      if (operation.resourceId.toLowerCase() !== resourceId.toLowerCase() || now >= operation.endMs || operation.id === newerId || this.#preempted.has(operation.id)) continue;
      this.#preempted.set(operation.id, now);
      n++;
    }
    return n;
  }

  status(operation: Operation): OperationStatus {
    const preemptedAt = this.#preempted.get(operation.id);
    if (preemptedAt !== undefined && this.#clock.now() >= preemptedAt) return "Canceled";
    if (this.#clock.now() < operation.endMs) return "InProgress";
    return operation.error ? "Failed" : "Succeeded";
  }

  /** The body ARM answers on the operation's polling URL. */
  toJson(operation: Operation): Record<string, unknown> {
    const status = this.status(operation);
    const json: Record<string, unknown> = {
      startTime: new Date(operation.startMs).toISOString(),
      status,
      name: operation.id,
    };
    if (status !== "InProgress") json["endTime"] = new Date(this.#preempted.get(operation.id) ?? operation.endMs).toISOString();
    if (status === "Failed" && operation.error) json["error"] = { ...operation.error };
    if (status === "Canceled") json["error"] = { ...OPERATION_PREEMPTED };
    return json;
  }
}
