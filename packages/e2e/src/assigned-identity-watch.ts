/**
 * Watches AzureAssignedIdentity objects the way `kubectl get azureassignedidentities -A -w` does, and keeps when
 * each one first reached each state — so the harness waits on events (never sleeps) and the demo can show the
 * pod → Created → Assigned timeline.
 */
import { assignedIdentityState, normalizeAzureAssignedIdentity, type AssignedIdentityState } from "@podidentity/api";
import { Informer, type KubeClient } from "@podidentity/kube";
import type { KubeObjectLike } from "./manifests";

export const ASSIGNED_IDENTITIES_PATH = "/apis/aadpodidentity.k8s.io/v1/azureassignedidentities";

export interface AssignedIdentityView {
  namespace: string;
  name: string;
  pod: string;
  podNamespace: string;
  node: string;
  identity: string;
  state: AssignedIdentityState | undefined;
  deleting: boolean;
  object: KubeObjectLike;
}

export interface AssignedIdentityTransition {
  /** performance.now() when the event arrived. */
  at: number;
  key: string;
  /** ADDED, MODIFIED or DELETED, as `kubectl get -w` would show it (a relist's differences included). */
  type: "ADDED" | "MODIFIED" | "DELETED";
  state: AssignedIdentityState | undefined;
}

export function viewOf(object: KubeObjectLike): AssignedIdentityView {
  const n = normalizeAzureAssignedIdentity(object).object;
  const spec = n.spec ?? {};
  const name = object.metadata?.name ?? "";
  // The embedded AzureIdentity's metadata names the identity (the API server keeps an embedded resource's metadata).
  const identity = spec.azureIdentityRef?.metadata?.name ?? "";
  return {
    namespace: object.metadata?.namespace ?? "",
    name,
    pod: spec.pod ?? "",
    podNamespace: spec.podNamespace ?? "",
    node: spec.nodename ?? "",
    identity,
    state: assignedIdentityState(n),
    deleting: object.metadata?.["deletionTimestamp"] !== undefined,
    object,
  };
}

type Waiter = { check: () => boolean };

export class AssignedIdentityWatch {
  readonly transitions: AssignedIdentityTransition[] = [];
  readonly #objects = new Map<string, AssignedIdentityView>();
  readonly #waiters = new Set<Waiter>();
  readonly #informer: Informer<KubeObjectLike>;

  private constructor(client: KubeClient) {
    // An informer, so an API server restart (or a 410) costs a re-watch or relist, not a wait until the timeout.
    this.#informer = new Informer<KubeObjectLike>(client, { path: ASSIGNED_IDENTITIES_PATH, minBackoffMs: 100, maxBackoffMs: 2_000 });
    this.#informer.addHandlers({
      add: (o) => this.#onEvent("ADDED", o),
      update: (o) => this.#onEvent("MODIFIED", o),
      delete: (o) => this.#onEvent("DELETED", o),
    });
  }

  /** Lists and watches every namespace's AzureAssignedIdentities as the given user; resolves once listed. */
  static async start(client: KubeClient): Promise<AssignedIdentityWatch> {
    const watch = new AssignedIdentityWatch(client);
    watch.#informer.start();
    await watch.#informer.synced;
    return watch;
  }

  #onEvent(type: AssignedIdentityTransition["type"], object: KubeObjectLike): void {
    const e = { type, object };
    const view = viewOf(e.object);
    const key = `${view.namespace}/${view.name}`;
    if (e.type === "DELETED") this.#objects.delete(key);
    else this.#objects.set(key, view);
    this.transitions.push({ at: performance.now(), key, type: e.type, state: view.state });
    for (const w of [...this.#waiters]) w.check();
  }

  get objects(): AssignedIdentityView[] {
    return [...this.#objects.values()];
  }

  /** When `key` (namespace/name) was first seen in `state` (performance.now()), if it was. */
  firstSeen(key: string, state: AssignedIdentityState | "DELETED"): number | undefined {
    return this.transitions.find((t) => t.key === key && (state === "DELETED" ? t.type === "DELETED" : t.type !== "DELETED" && t.state === state))?.at;
  }

  /** Resolves with `pick`'s first defined answer, evaluated now and after every watch event; rejects after `timeoutMs`. */
  until<T>(what: string, pick: (objects: AssignedIdentityView[]) => T | undefined, timeoutMs = 30_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = {
        check: () => {
          const value = pick(this.objects);
          if (value === undefined) return false;
          this.#waiters.delete(waiter);
          clearTimeout(timer);
          resolve(value);
          return true;
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        const now = this.objects.map((o) => `${o.namespace}/${o.name}=${o.state ?? "?"}`).join(", ") || "none";
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (AzureAssignedIdentities now: ${now})`));
      }, timeoutMs);
      this.#waiters.add(waiter);
      waiter.check();
    });
  }

  /** The AzureAssignedIdentity of `pod` (namespace/name) for `identity`, once it is in `state`. */
  forPod(pod: { namespace: string; name: string }, identity: string, state: AssignedIdentityState, timeoutMs?: number): Promise<AssignedIdentityView> {
    return this.until(
      `${pod.namespace}/${pod.name}'s AzureAssignedIdentity for ${identity} to be ${state}`,
      (objects) => objects.find((o) => o.pod === pod.name && o.podNamespace === pod.namespace && o.identity === identity && o.state === state),
      timeoutMs,
    );
  }

  /** Resolves once no AzureAssignedIdentity refers to `pod` any more. */
  noneForPod(pod: { namespace: string; name: string }, timeoutMs?: number): Promise<true> {
    return this.until(`no AzureAssignedIdentity for ${pod.namespace}/${pod.name}`, (objects) => (objects.some((o) => o.pod === pod.name && o.podNamespace === pod.namespace) ? undefined : true), timeoutMs);
  }

  async close(): Promise<void> {
    this.#waiters.clear();
    await this.#informer.stop();
  }
}
