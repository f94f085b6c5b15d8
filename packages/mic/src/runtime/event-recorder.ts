import { createHash, randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { Clock } from "../clock";
import { describe } from "../errors";
import type { KubeClient } from "@podidentity/kube";

export interface InvolvedObject {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  uid?: string;
}

export interface EventRecorderOptions {
  clock: Clock;
  logger: Logger;
  /** Events are written only while this is true (the leader); a standby stays silent. */
  canWrite(): boolean;
  component?: string;
  instance?: string;
  /** The same (object, reason, message) is written once per window. */
  dedupeWindowMs?: number;
  concurrency?: number;
  /** Drop events beyond this backlog rather than grow without bound (the API server is struggling). */
  maxBacklog?: number;
  /**
   * While this says so (reconciles are waiting), events wait too — up to `maxDeferMs` — so a burst's status
   * writes are not slowed by its thousands of "binding applied" events.
   */
  defer?(): boolean;
  maxDeferMs?: number;
}

interface PendingEvent {
  involved: InvolvedObject;
  type: "Normal" | "Warning";
  reason: string;
  message: string;
  atMs: number;
}

/**
 * What makes two events the same for deduplication, as a 43-character digest: the recorder keeps one per event
 * written in the window (a burst of 10,000 pods writes 20,000 "binding applied" events), and the object, reason and
 * message it digests are ~150 characters held as a tree of concatenated strings — 7.7 MiB for those 20,000 as
 * keys, 2.4 MiB as digests.
 */
function dedupeKeyOf(involved: InvolvedObject, reason: string, message: string): string {
  return createHash("sha256").update(`${involved.kind}/${involved.namespace}/${involved.name}/${involved.uid ?? ""}/${reason}/${message}`).digest("base64url");
}

/**
 * Kubernetes Events, written in the background so reconciles never wait for them, deduplicated so a retrying
 * failure does not flood the namespace.
 */
export class EventRecorder {
  readonly #client: KubeClient;
  readonly #o: EventRecorderOptions;
  readonly #queue: PendingEvent[] = [];
  /** Dedupe key (dedupeKeyOf) → when that event was last written. */
  readonly #seen = new Map<string, number>();
  #active = 0;
  #deferred = false;
  #idle: Array<() => void> = [];

  constructor(client: KubeClient, options: EventRecorderOptions) {
    this.#client = client;
    this.#o = options;
  }

  record(involved: InvolvedObject, type: "Normal" | "Warning", reason: string, message: string): void {
    if (!this.#o.canWrite()) return;
    const now = this.#o.clock.now();
    const dedupeKey = dedupeKeyOf(involved, reason, message);
    const last = this.#seen.get(dedupeKey);
    if (last !== undefined && now - last < (this.#o.dedupeWindowMs ?? 10 * 60_000)) return;
    this.#seen.set(dedupeKey, now);
    if (this.#seen.size > 50_000) this.#prune(now);
    if (this.#queue.length >= (this.#o.maxBacklog ?? 10_000)) return;
    this.#queue.push({ involved, type, reason, message, atMs: now });
    this.#pump();
  }

  /** Resolves once everything queued so far has been written (or failed). */
  async flush(): Promise<void> {
    if (this.#active === 0 && this.#queue.length === 0) return;
    await new Promise<void>((resolve) => this.#idle.push(resolve));
  }

  #prune(now: number): void {
    const window = this.#o.dedupeWindowMs ?? 10 * 60_000;
    for (const [key, at] of this.#seen) if (now - at >= window) this.#seen.delete(key);
  }

  #pump(): void {
    const oldest = this.#queue[0];
    if (oldest && this.#active === 0 && this.#o.defer?.() && this.#o.clock.now() - oldest.atMs < (this.#o.maxDeferMs ?? 5_000)) {
      if (!this.#deferred) {
        this.#deferred = true;
        void this.#o.clock.sleep(50).then(() => {
          this.#deferred = false;
          this.#pump();
        });
      }
      return;
    }
    while (this.#active < (this.#o.concurrency ?? 4) && this.#queue.length > 0) {
      const event = this.#queue.shift()!;
      this.#active += 1;
      void this.#write(event).finally(() => {
        this.#active -= 1;
        if (this.#active === 0 && this.#queue.length === 0) for (const resolve of this.#idle.splice(0)) resolve();
        this.#pump();
      });
    }
  }

  async #write(event: PendingEvent): Promise<void> {
    if (!this.#o.canWrite()) return;
    const timestamp = new Date(event.atMs).toISOString().replace(/\.\d+Z$/, "Z");
    const namespace = event.involved.namespace || "default";
    const body = {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: `${event.involved.name}.${event.atMs.toString(16)}${randomBytes(4).toString("hex")}`, namespace },
      involvedObject: { ...event.involved, namespace },
      reason: event.reason,
      message: event.message,
      type: event.type,
      count: 1,
      firstTimestamp: timestamp,
      lastTimestamp: timestamp,
      source: { component: this.#o.component ?? "podidentity-mic", ...(this.#o.instance && { host: this.#o.instance }) },
      reportingComponent: this.#o.component ?? "podidentity-mic",
      reportingInstance: this.#o.instance ?? "",
    };
    try {
      await this.#client.request("POST", `/api/v1/namespaces/${encodeURIComponent(namespace)}/events`, { body });
    } catch (error) {
      // Events are best effort: never fail or retry a reconcile because one could not be written.
      this.#o.logger.debug({ err: describe(error), reason: event.reason }, "could not write an event");
    }
  }
}
