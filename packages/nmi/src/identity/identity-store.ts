import { EventEmitter } from "node:events";
import {
  API_GROUP,
  API_VERSION,
  ASSIGNED_IDENTITY_STATE,
  AZURE_ASSIGNED_IDENTITY_NAMES,
  AZURE_IDENTITY_BINDING_NAMES,
  AZURE_IDENTITY_NAMES,
  AZURE_POD_IDENTITY_EXCEPTION_NAMES,
  IdentityCatalog,
  NODENAME_LABEL,
  assignedIdentityState,
  nameOf,
  namespaceOf,
  normalizeAzureAssignedIdentity,
  normalizeAzureIdentity,
  normalizeAzureIdentityBinding,
  normalizeAzurePodIdentityException,
  type AzureAssignedIdentity,
  type AzureIdentity,
  type AzureIdentityBinding,
  type AzurePodIdentityException,
  type ResourceKindNames,
} from "@podidentity/api";
import type { Logger } from "pino";
import type { OperationMode } from "../config";
import { Informer, type KubeClient, type KubeObject } from "@podidentity/kube";

export interface IdentityStoreOptions {
  client: KubeClient;
  nodeName: string;
  operationMode: OperationMode;
  logger: Logger;
  now: () => number;
  onInformerError?: (informer: string, error: unknown) => void;
}

/** What changed, so the token cache can drop entries of a changed identity (`namespace/name`). */
export interface IdentityChange {
  kind: "identity" | "binding" | "assigned" | "exception";
  /** For identities: the identity; for bindings: the identity the binding names (old and new spec). */
  identityKeys: string[];
}

export const identityKey = (namespace: string, name: string): string => `${namespace}/${name}`;

/**
 * NMI's view of the custom resources, all by informer (no API call per request): AzureIdentity,
 * AzureIdentityBinding and AzurePodIdentityException in both modes — so "no binding selects this pod" is told
 * apart from "assignment pending" — and, in standard mode, this node's AzureAssignedIdentity objects (label
 * `nodename=<node>`, v1.8's enableScaleFeatures). Objects are normalised (legacy keys) once per change.
 */
export class IdentityStore extends EventEmitter<{ change: [IdentityChange] }> {
  readonly informers: Informer<KubeObject>[] = [];
  readonly #identities: Informer<KubeObject>;
  readonly #bindings: Informer<KubeObject>;
  readonly #exceptions: Informer<KubeObject>;
  readonly #assigned: Informer<KubeObject> | undefined;
  readonly #now: () => number;
  #catalog: IdentityCatalog | undefined;
  #exceptionList: AzurePodIdentityException[] | undefined;
  #assignedList: AzureAssignedIdentity[] | undefined;
  #assignedByKey: Map<string, AzureAssignedIdentity> | undefined;
  #generation = 0;
  /** When each AzureAssignedIdentity (by uid) was first seen Assigned: the start of the propagation grace. */
  readonly #assignedAtMs = new Map<string, number>();

  constructor(options: IdentityStoreOptions) {
    super();
    this.setMaxListeners(0);
    // Registered first, so the generation has moved before any other listener re-evaluates.
    this.on("change", () => this.#generation++);
    this.#now = options.now;
    const make = (names: ResourceKindNames, labelSelector?: string): Informer<KubeObject> => {
      const informer = new Informer<KubeObject>(options.client, {
        path: `/apis/${API_GROUP}/${API_VERSION}/${names.plural}`,
        ...(labelSelector !== undefined && { labelSelector }),
        onError: (error, retryInMs) => {
          options.onInformerError?.(names.plural, error);
          options.logger.warn(
            { informer: names.plural, status: (error as { status?: number }).status, err: (error as Error).message, retryInMs },
            retryInMs === undefined ? "an informer handler failed" : "informer list/watch failed; retrying with backoff",
          );
        },
      });
      this.informers.push(informer);
      return informer;
    };
    this.#identities = make(AZURE_IDENTITY_NAMES);
    this.#bindings = make(AZURE_IDENTITY_BINDING_NAMES);
    this.#exceptions = make(AZURE_POD_IDENTITY_EXCEPTION_NAMES);
    if (options.operationMode === "standard") {
      this.#assigned = make(AZURE_ASSIGNED_IDENTITY_NAMES, `${NODENAME_LABEL}=${options.nodeName}`);
    }

    const keyOf = (o: KubeObject): string => identityKey(namespaceOf(o), nameOf(o));
    const onIdentity = (o: KubeObject): void => {
      this.#catalog = undefined;
      this.emit("change", { kind: "identity", identityKeys: [keyOf(o)] });
    };
    this.#identities.addHandlers({ add: onIdentity, update: onIdentity, delete: onIdentity });
    const lastBindingTarget = new Map<string, string>();
    const onBinding = (o: KubeObject, deleted = false): void => {
      this.#catalog = undefined;
      const binding = normalizeAzureIdentityBinding(o).object;
      const bindingKey = keyOf(o);
      const keys = new Set<string>();
      const before = lastBindingTarget.get(bindingKey);
      if (before !== undefined) keys.add(before);
      if (binding.spec.azureIdentity !== undefined) keys.add(identityKey(namespaceOf(o), binding.spec.azureIdentity));
      if (deleted || binding.spec.azureIdentity === undefined) lastBindingTarget.delete(bindingKey);
      else lastBindingTarget.set(bindingKey, identityKey(namespaceOf(o), binding.spec.azureIdentity));
      this.emit("change", { kind: "binding", identityKeys: [...keys] });
    };
    this.#bindings.addHandlers({ add: (o) => onBinding(o), update: (o) => onBinding(o), delete: (o) => onBinding(o, true) });
    const onException = (): void => {
      this.#exceptionList = undefined;
      this.emit("change", { kind: "exception", identityKeys: [] });
    };
    this.#exceptions.addHandlers({ add: onException, update: onException, delete: onException });
    if (this.#assigned !== undefined) {
      const onAssigned = (o: KubeObject, deleted = false): void => {
        this.#assignedList = undefined;
        this.#assignedByKey = undefined;
        const uid = o.metadata?.uid ?? keyOf(o);
        const state = assignedIdentityState(normalizeAzureAssignedIdentity(o).object);
        if (deleted || state !== ASSIGNED_IDENTITY_STATE.Assigned) this.#assignedAtMs.delete(uid);
        else if (!this.#assignedAtMs.has(uid)) this.#assignedAtMs.set(uid, this.#now());
        this.emit("change", { kind: "assigned", identityKeys: [] });
      };
      this.#assigned.addHandlers({ add: (o) => onAssigned(o), update: (o) => onAssigned(o), delete: (o) => onAssigned(o, true) });
    }
  }

  get synced(): boolean {
    return this.informers.every((i) => i.hasSynced);
  }

  /** Resolves once every informer has listed (they keep watching after that). */
  async start(): Promise<void> {
    for (const i of this.informers) i.start();
    await Promise.all(this.informers.map((i) => i.synced));
  }

  async stop(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  /** Bindings and identities as an IdentityCatalog (@podidentity/api's matching rules), rebuilt after a change. */
  catalog(): IdentityCatalog {
    if (this.#catalog === undefined) {
      const bindings: AzureIdentityBinding[] = this.#bindings.list().map((o) => normalizeAzureIdentityBinding(o).object);
      const identities: AzureIdentity[] = this.#identities.list().map((o) => normalizeAzureIdentity(o).object);
      this.#catalog = new IdentityCatalog(bindings, identities);
    }
    return this.#catalog;
  }

  exceptions(): readonly AzurePodIdentityException[] {
    this.#exceptionList ??= this.#exceptions.list().map((o) => normalizeAzurePodIdentityException(o).object);
    return this.#exceptionList;
  }

  /** This node's AzureAssignedIdentity objects (standard mode; empty in managed mode). */
  assignedIdentities(): readonly AzureAssignedIdentity[] {
    if (this.#assigned === undefined) return [];
    this.#assignedList ??= this.#assigned.list().map((o) => normalizeAzureAssignedIdentity(o).object);
    return this.#assignedList;
  }

  assignedIdentity(namespace: string, name: string): AzureAssignedIdentity | undefined {
    this.#assignedByKey ??= new Map(this.assignedIdentities().map((a) => [identityKey(namespaceOf(a), nameOf(a)), a] as const));
    return this.#assignedByKey.get(identityKey(namespace, name));
  }

  /** Bumped on every change of any of the resources: lets callers memoise answers computed from them. */
  get generation(): number {
    return this.#generation;
  }

  /** When the AzureAssignedIdentity was first seen Assigned by this NMI (undefined if it is not Assigned). */
  assignedAtMs(assigned: AzureAssignedIdentity): number | undefined {
    const uid = typeof assigned.metadata.uid === "string" ? assigned.metadata.uid : identityKey(namespaceOf(assigned), nameOf(assigned));
    return this.#assignedAtMs.get(uid);
  }
}
