import { API_GROUP_VERSION, ASSIGNED_IDENTITY_FINALIZER, AZURE_ASSIGNED_IDENTITY_NAMES, nameOf, namespaceOf } from "@podidentity/api";
import { KubeApiError, type KubeClient, type KubeObject } from "@podidentity/kube";
import { NotLeaderError } from "../errors";
import type { AssignedIdentityIndex, IndexedAssignment } from "./assigned-identity-index";

/** The local cache the index is fed from (the AzureAssignedIdentity informer). */
export interface AssignedIdentityCache {
  applyLocal(object: KubeObject): void;
  applyLocalDelete(key: string): void;
}

export interface AssignedIdentityWriterOptions {
  client: KubeClient;
  index: AssignedIdentityIndex;
  cache: AssignedIdentityCache;
  /** The leadership term's signal: a write is sent only while it is not aborted, and aborts with it. */
  leadership: { readonly signal: AbortSignal };
}

const aaiPath = (namespace: string, name?: string): string =>
  `/apis/${API_GROUP_VERSION}/namespaces/${encodeURIComponent(namespace)}/${AZURE_ASSIGNED_IDENTITY_NAMES.plural}${name === undefined ? "" : `/${encodeURIComponent(name)}`}`;
const MERGE_PATCH = "application/merge-patch+json";

/**
 * Every write MIC makes to AzureAssignedIdentities, in one place: only while leading (NotLeaderError otherwise),
 * and each response fed into the local cache at once, before its watch event, so the next reconcile reads what
 * was just written.
 */
export class AssignedIdentityWriter {
  readonly #o: AssignedIdentityWriterOptions;

  constructor(options: AssignedIdentityWriterOptions) {
    this.#o = options;
  }

  async create(namespace: string, body: Record<string, unknown>): Promise<void> {
    const created = await this.#o.client.request<KubeObject>("POST", aaiPath(namespace), { body, signal: this.#signal("create AzureAssignedIdentity") });
    this.#o.cache.applyLocal(created);
  }

  /** Reads one object from the API server into the cache (after a 409: our cache is behind). */
  async refresh(namespace: string, name: string): Promise<void> {
    const current = await this.#o.client.request<KubeObject>("GET", aaiPath(namespace, name), { signal: this.#signal("read AzureAssignedIdentity") });
    this.#o.cache.applyLocal(current);
  }

  async replace(namespace: string, name: string, body: Record<string, unknown>): Promise<void> {
    const updated = await this.#o.client.request<KubeObject>("PUT", aaiPath(namespace, name), { body, signal: this.#signal("update AzureAssignedIdentity") });
    this.#o.cache.applyLocal(updated);
  }

  /** A merge patch; returns the object as the index now holds it. */
  async patch(existing: IndexedAssignment, patch: Record<string, unknown>): Promise<IndexedAssignment> {
    const updated = await this.#o.client.request<KubeObject>("PATCH", aaiPath(namespaceOf(existing.object), nameOf(existing.object)), {
      body: patch,
      contentType: MERGE_PATCH,
      signal: this.#signal("update AzureAssignedIdentity"),
    });
    this.#o.cache.applyLocal(updated);
    return this.#o.index.get(existing.key) ?? existing;
  }

  /** Removes MIC's finalizer and deletes the object (a terminating one is only released); gone already is fine. */
  async finalize(existing: IndexedAssignment): Promise<void> {
    const { client, cache } = this.#o;
    const namespace = namespaceOf(existing.object);
    const name = nameOf(existing.object);
    const finalizers = existing.object.metadata.finalizers ?? [];
    const signal = this.#signal("delete AzureAssignedIdentity");
    try {
      if (finalizers.includes(ASSIGNED_IDENTITY_FINALIZER)) {
        await client.request("PATCH", aaiPath(namespace, name), {
          body: { metadata: { finalizers: finalizers.filter((f) => f !== ASSIGNED_IDENTITY_FINALIZER), resourceVersion: existing.object.metadata.resourceVersion } },
          contentType: MERGE_PATCH,
          signal,
        });
      }
      if (!existing.terminating) await client.request("DELETE", aaiPath(namespace, name), { signal });
    } catch (error) {
      if (!(error instanceof KubeApiError && error.isNotFound)) throw error;
    }
    cache.applyLocalDelete(existing.key);
  }

  #signal(what: string): AbortSignal {
    const signal = this.#o.leadership.signal;
    if (signal.aborted) throw new NotLeaderError(what);
    return signal;
  }
}
