import { API_GROUP_VERSION, AZURE_IDENTITY_BINDING_NAMES, AZURE_IDENTITY_NAMES } from "@podidentity/api";
import type { Logger } from "pino";
import type { AssignedIdentityIndex } from "../state/assigned-identity-index";
import type { Clock } from "../clock";
import { KubeApiError, type KubeClient } from "@podidentity/kube";
import { WorkQueue } from "./work-queue";

type Kind = "identity" | "binding";

interface WithStatus {
  status?: { availableReplicas?: number; AvailableReplicas?: number };
}

export interface StatusWriterOptions {
  clock: Clock;
  logger: Logger;
  index: AssignedIdentityIndex;
  canWrite(): boolean;
  signal(): AbortSignal;
  identities(): ReadonlyMap<string, WithStatus>;
  bindings(): ReadonlyMap<string, WithStatus>;
  /** Changes within this window share one write. */
  coalesceMs?: number;
}

/**
 * AzureIdentity and AzureIdentityBinding `status.availableReplicas`: how many of their AzureAssignedIdentities
 * are Assigned, written through the /status subresource only when it changes, coalesced so a burst of
 * assignments costs one write per object.
 */
export class StatusWriter {
  readonly #client: KubeClient;
  readonly #o: StatusWriterOptions;
  readonly #queue: WorkQueue;

  constructor(client: KubeClient, options: StatusWriterOptions) {
    this.#client = client;
    this.#o = options;
    this.#queue = new WorkQueue({ concurrency: 4, clock: options.clock });
  }

  enqueue(kind: Kind, key: string): void {
    if (this.#o.canWrite()) this.#queue.add(`${kind}:${key}`, this.#o.coalesceMs ?? 500);
  }

  enqueueAll(kind: Kind): void {
    for (const key of (kind === "identity" ? this.#o.identities() : this.#o.bindings()).keys()) this.#queue.add(`${kind}:${key}`, this.#o.coalesceMs ?? 500);
  }

  start(): void {
    this.#queue.start((key) => this.#write(key));
  }

  async stop(): Promise<void> {
    await this.#queue.stop();
  }

  async #write(queueKey: string): Promise<void> {
    if (!this.#o.canWrite()) return;
    const [kind, key] = queueKey.split(/:(.*)/s) as [Kind, string];
    const object = (kind === "identity" ? this.#o.identities() : this.#o.bindings()).get(key);
    if (!object) return;
    const count = kind === "identity" ? this.#o.index.assignedCountForIdentity(key) : this.#o.index.assignedCountForBinding(key);
    const current = object.status?.availableReplicas ?? object.status?.AvailableReplicas ?? 0;
    if (current === count) return;
    const [namespace, name] = key.split("/") as [string, string];
    const plural = kind === "identity" ? AZURE_IDENTITY_NAMES.plural : AZURE_IDENTITY_BINDING_NAMES.plural;
    try {
      await this.#client.request("PATCH", `/apis/${API_GROUP_VERSION}/namespaces/${encodeURIComponent(namespace)}/${plural}/${encodeURIComponent(name)}/status`, {
        body: { status: { availableReplicas: count } },
        contentType: "application/merge-patch+json",
        signal: this.#o.signal(),
      });
    } catch (error) {
      if (!(error instanceof KubeApiError && error.isNotFound)) throw error;
    }
  }
}
