import { randomUUID } from "node:crypto";
import type { Clock } from "../clock";

export type OperationStatus = "InProgress" | "Succeeded" | "Failed";

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
 * InProgress until its end time on the clock, then Succeeded, or Failed when started with an error.
 */
export class OperationTracker {
  readonly #clock: Clock;
  readonly #operations = new Map<string, Operation>();

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

  status(operation: Operation): OperationStatus {
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
    if (status !== "InProgress") json["endTime"] = new Date(operation.endMs).toISOString();
    if (status === "Failed" && operation.error) json["error"] = { ...operation.error };
    return json;
  }
}
