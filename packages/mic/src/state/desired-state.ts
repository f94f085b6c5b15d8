import {
  IdentityCatalog,
  nameOf,
  namespaceOf,
  podSelector,
  type AzureIdentity,
  type AzureIdentityBinding,
  type SkippedBinding,
} from "@podidentity/api";
import type { ComputeTarget } from "../arm/compute-target";
import { identityFacts } from "./identity-facts";
import { addToSetMap, removeFromSetMap } from "./set-map";

export interface PodObject {
  metadata?: { name?: string; namespace?: string; uid?: string; labels?: Record<string, string>; deletionTimestamp?: string; resourceVersion?: string };
  spec?: { nodeName?: string };
  status?: { phase?: string };
}

export interface NodeObject {
  metadata?: { name?: string; resourceVersion?: string };
  spec?: { providerID?: string };
}

/** One AzureAssignedIdentity that should exist: a pod, an identity it may use, and where it runs. */
export interface DesiredAssignment {
  /** `<namespace>/<name>` of the AzureAssignedIdentity. */
  readonly key: string;
  readonly name: string;
  readonly namespace: string;
  readonly podKey: string;
  readonly pod: string;
  readonly podNamespace: string;
  readonly podUid: string | undefined;
  readonly nodeName: string;
  readonly identity: AzureIdentity;
  readonly binding: AzureIdentityBinding;
  /** 0 user-assigned MSI (needs ARM), 1/2 service principal (no ARM). */
  readonly identityType: number;
  /** Canonical resource ID, type 0 only. */
  readonly resourceId: string | undefined;
  readonly clientId: string;
  readonly target: ComputeTarget | undefined;
}

export interface DesiredStateChange {
  /** Assignment keys whose desired state changed (may repeat). */
  readonly keys: readonly string[];
  /** VM/VMSS keys whose needed identities changed (may repeat). */
  readonly targets: readonly string[];
  /** Pods whose matching reported skipped bindings (for Warning events), with the skips. */
  readonly skipped: ReadonlyArray<{ pod: PodObject; skipped: readonly SkippedBinding[] }>;
}

export interface DesiredStateOptions {
  forceNamespaced: boolean;
  nodeTarget(node: NodeObject): ComputeTarget | undefined;
}

const FINISHED = new Set(["Succeeded", "Failed"]);
const EMPTY_ITEMS: Map<string, DesiredAssignment> = new Map();
const NO_ASSIGNMENTS: { items: DesiredAssignment[]; skipped: readonly SkippedBinding[] } = { items: [], skipped: [] };

interface MutableChange {
  keys: string[];
  targets: string[];
  skipped: Array<{ pod: PodObject; skipped: readonly SkippedBinding[] }>;
}

/** The fields of a pod that matching reads; equal signatures mean equal desired assignments. */
function podSignature(pod: PodObject): string {
  return `${pod.metadata?.uid ?? ""}\n${podSelector(pod) ?? "\u0000"}\n${pod.spec?.nodeName ?? ""}\n${FINISHED.has(pod.status?.phase ?? "") ? 1 : 0}`;
}
const keyOf = (o: { metadata?: { name?: string; namespace?: string } }): string => `${namespaceOf(o)}/${nameOf(o)}`;


/**
 * The pod ↔ identity pairs that should have an AzureAssignedIdentity, kept up to date from informer events.
 * Matching itself is @podidentity/api's IdentityCatalog (shared with NMI). Everything is indexed — pods by
 * selector and node, bindings by selector and identity, one catalog per selector — so an event recomputes
 * only the pods it can affect: a pod event one pod, a binding event the pods with its selector(s), an identity
 * event the pods of the bindings naming it, a node event the pods on it.
 *
 * Unlike v1.8, finished pods (Succeeded/Failed) have no desired assignments, so they release their identities;
 * neither do pods on nodes MIC does not know (yet).
 */
export class DesiredState {
  readonly #options: DesiredStateOptions;
  readonly #pods = new Map<string, PodObject>();
  readonly #podsBySelector = new Map<string, Set<string>>();
  readonly #podsByNode = new Map<string, Set<string>>();
  readonly #podItems = new Map<string, DesiredAssignment[]>();
  readonly #items = new Map<string, DesiredAssignment>();
  readonly #nodes = new Map<string, ComputeTarget | undefined>();
  readonly #bindings = new Map<string, AzureIdentityBinding>();
  readonly #bindingsBySelector = new Map<string, Set<string>>();
  readonly #bindingsByIdentity = new Map<string, Set<string>>();
  readonly #identities = new Map<string, AzureIdentity>();
  readonly #catalogs = new Map<string, IdentityCatalog>();
  /** target key → resource ID → assignment keys needing it there. */
  readonly #wanted = new Map<string, Map<string, Set<string>>>();
  readonly #targetRefs = new Map<string, ComputeTarget>();
  readonly #listeners: Array<(change: DesiredStateChange) => void> = [];
  /** Pods whose matching currently skips bindings, for re-reporting when a new leader starts. */
  readonly #skipped = new Map<string, { pod: PodObject; skipped: readonly SkippedBinding[] }>();

  constructor(options: DesiredStateOptions) {
    this.#options = options;
  }

  onChange(listener: (change: DesiredStateChange) => void): void {
    this.#listeners.push(listener);
  }

  get(key: string): DesiredAssignment | undefined {
    return this.#items.get(key);
  }

  get size(): number {
    return this.#items.size;
  }

  keys(): IterableIterator<string> {
    return this.#items.keys();
  }

  /** Every pod whose selecting bindings currently give it nothing, with why. */
  allSkipped(): IterableIterator<{ pod: PodObject; skipped: readonly SkippedBinding[] }> {
    return this.#skipped.values();
  }

  /** Resource IDs that pods on `target` need, each with the assignment keys needing it. */
  wanted(target: string): ReadonlyMap<string, ReadonlySet<string>> {
    return this.#wanted.get(target) ?? new Map();
  }

  /** VM/VMSS with at least one identity needed, by key. */
  targets(): IterableIterator<ComputeTarget> {
    return this.#targetRefs.values();
  }

  nodeTarget(nodeName: string): ComputeTarget | undefined {
    return this.#nodes.get(nodeName);
  }

  hasNode(nodeName: string): boolean {
    return this.#nodes.has(nodeName);
  }

  identity(namespace: string, name: string): AzureIdentity | undefined {
    return this.#identities.get(`${namespace}/${name}`);
  }

  // ---- inputs ----

  upsertPod(pod: PodObject): void {
    const key = keyOf(pod);
    const old = this.#pods.get(key);
    if (old && podSignature(old) === podSignature(pod)) {
      // Nothing matching looks at changed (status updates, IPs, annotations): keep the old computation.
      this.#pods.set(key, pod);
      return;
    }
    if (old) this.#unindexPod(key, old);
    this.#pods.set(key, pod);
    const selector = podSelector(pod);
    if (selector !== undefined) addToSetMap(this.#podsBySelector, selector, key);
    const node = pod.spec?.nodeName;
    if (node) addToSetMap(this.#podsByNode, node, key);
    const change: MutableChange = { keys: [], targets: [], skipped: [] };
    this.#recomputePod(key, change);
    this.#emit(change);
  }

  deletePod(pod: PodObject): void {
    const key = keyOf(pod);
    const old = this.#pods.get(key);
    if (!old) return;
    this.#unindexPod(key, old);
    this.#pods.delete(key);
    this.#emit(this.#recompute([key]));
  }

  upsertNode(node: NodeObject): void {
    const name = nameOf(node);
    const target = this.#options.nodeTarget(node);
    const had = this.#nodes.has(name);
    if (had && this.#nodes.get(name)?.key === target?.key) return;
    this.#nodes.set(name, target);
    this.#emit(this.#recompute(this.#podsByNode.get(name) ?? []));
  }

  deleteNode(node: NodeObject): void {
    const name = nameOf(node);
    if (!this.#nodes.delete(name)) return;
    this.#emit(this.#recompute(this.#podsByNode.get(name) ?? []));
  }

  upsertBinding(binding: AzureIdentityBinding): void {
    const key = keyOf(binding);
    const old = this.#bindings.get(key);
    const selectors = new Set<string>();
    if (old) {
      this.#unindexBinding(key, old, selectors);
    }
    this.#bindings.set(key, binding);
    const selector = binding.spec.selector;
    if (selector) {
      addToSetMap(this.#bindingsBySelector, selector, key);
      selectors.add(selector);
    }
    if (binding.spec.azureIdentity) addToSetMap(this.#bindingsByIdentity, `${namespaceOf(binding)}/${binding.spec.azureIdentity}`, key);
    this.#emit(this.#recomputeSelectors(selectors));
  }

  deleteBinding(binding: AzureIdentityBinding): void {
    const key = keyOf(binding);
    const old = this.#bindings.get(key);
    if (!old) return;
    const selectors = new Set<string>();
    this.#unindexBinding(key, old, selectors);
    this.#bindings.delete(key);
    this.#emit(this.#recomputeSelectors(selectors));
  }

  upsertIdentity(identity: AzureIdentity): void {
    const key = keyOf(identity);
    this.#identities.set(key, identity);
    this.#emit(this.#recomputeIdentity(key));
  }

  deleteIdentity(identity: AzureIdentity): void {
    const key = keyOf(identity);
    if (!this.#identities.delete(key)) return;
    this.#emit(this.#recomputeIdentity(key));
  }

  // ---- internals ----

  #unindexPod(key: string, pod: PodObject): void {
    const selector = podSelector(pod);
    if (selector !== undefined) removeFromSetMap(this.#podsBySelector, selector, key);
    const node = pod.spec?.nodeName;
    if (node) removeFromSetMap(this.#podsByNode, node, key);
  }

  #unindexBinding(key: string, binding: AzureIdentityBinding, selectors: Set<string>): void {
    const selector = binding.spec.selector;
    if (selector) {
      removeFromSetMap(this.#bindingsBySelector, selector, key);
      selectors.add(selector);
    }
    if (binding.spec.azureIdentity) removeFromSetMap(this.#bindingsByIdentity, `${namespaceOf(binding)}/${binding.spec.azureIdentity}`, key);
  }

  #recomputeIdentity(identityKey: string): DesiredStateChange {
    const selectors = new Set<string>();
    for (const bindingKey of this.#bindingsByIdentity.get(identityKey) ?? []) {
      const selector = this.#bindings.get(bindingKey)?.spec.selector;
      if (selector) selectors.add(selector);
    }
    return this.#recomputeSelectors(selectors);
  }

  #recomputeSelectors(selectors: Iterable<string>): DesiredStateChange {
    const pods: string[] = [];
    for (const selector of selectors) {
      this.#catalogs.delete(selector);
      for (const pod of this.#podsBySelector.get(selector) ?? []) pods.push(pod);
    }
    return this.#recompute(pods);
  }

  /** The catalog of one selector: only its bindings and the identities they name. */
  #catalog(selector: string): IdentityCatalog {
    let catalog = this.#catalogs.get(selector);
    if (!catalog) {
      const bindings = [...(this.#bindingsBySelector.get(selector) ?? [])].map((k) => this.#bindings.get(k)!);
      const identities: AzureIdentity[] = [];
      for (const b of bindings) {
        const identity = b.spec.azureIdentity ? this.#identities.get(`${namespaceOf(b)}/${b.spec.azureIdentity}`) : undefined;
        if (identity) identities.push(identity);
      }
      catalog = new IdentityCatalog(bindings, identities);
      this.#catalogs.set(selector, catalog);
    }
    return catalog;
  }

  #recompute(podKeys: Iterable<string>): DesiredStateChange {
    const change: MutableChange = { keys: [], targets: [], skipped: [] };
    for (const podKey of new Set(podKeys)) this.#recomputePod(podKey, change);
    return change;
  }

  /** One pod's assignments, diffed against what it had: only changed ones are reported. */
  #recomputePod(podKey: string, change: MutableChange): void {
    const previous = this.#podItems.get(podKey);
    const before = previous === undefined ? EMPTY_ITEMS : new Map(previous.map((item) => [item.key, item]));
    this.#podItems.delete(podKey);
    const pod = this.#pods.get(podKey);
    const result = pod ? this.#assignmentsOf(podKey, pod) : NO_ASSIGNMENTS;
    if (pod && result.skipped.length > 0) {
      change.skipped.push({ pod, skipped: result.skipped });
      this.#skipped.set(podKey, { pod, skipped: result.skipped });
    } else if (this.#skipped.size > 0) {
      this.#skipped.delete(podKey);
    }
    const kept: DesiredAssignment[] = [];
    for (const item of result.items) {
      const old = before.get(item.key);
      if (old && sameFingerprint(old, item) && old.target?.key === item.target?.key) {
        // Unchanged (a pod status update, say): nothing to reconcile.
        before.delete(item.key);
        kept.push(old);
        continue;
      }
      if (old) {
        this.#removeItem(old, change.keys, change.targets);
        before.delete(item.key);
      }
      // v1.8's naming can collide across pods (pod "a-b" in "c" vs pod "a" in "b-c"): the first one keeps it.
      if (this.#items.has(item.key)) continue;
      kept.push(item);
      this.#items.set(item.key, item);
      change.keys.push(item.key);
      const target = item.target;
      if (target && item.resourceId) {
        let byId = this.#wanted.get(target.key);
        if (!byId) {
          this.#wanted.set(target.key, (byId = new Map()));
          this.#targetRefs.set(target.key, target);
        }
        addToSetMap(byId, item.resourceId, item.key);
        change.targets.push(target.key);
      }
    }
    for (const old of before.values()) this.#removeItem(old, change.keys, change.targets);
    if (kept.length > 0) this.#podItems.set(podKey, kept);
  }

  #removeItem(item: DesiredAssignment, keys: string[], targets: string[]): void {
    if (this.#items.get(item.key) !== item) return;
    this.#items.delete(item.key);
    keys.push(item.key);
    if (item.target && item.resourceId) {
      const byId = this.#wanted.get(item.target.key);
      if (byId) {
        removeFromSetMap(byId, item.resourceId, item.key);
        if (byId.size === 0) {
          this.#wanted.delete(item.target.key);
          this.#targetRefs.delete(item.target.key);
        }
      }
      targets.push(item.target.key);
    }
  }

  #assignmentsOf(podKey: string, pod: PodObject): { items: DesiredAssignment[]; skipped: readonly SkippedBinding[] } {
    const nodeName = pod.spec?.nodeName;
    const selector = podSelector(pod);
    if (!nodeName || selector === undefined || FINISHED.has(pod.status?.phase ?? "")) return NO_ASSIGNMENTS;
    if (!this.#nodes.has(nodeName)) return NO_ASSIGNMENTS;
    const target = this.#nodes.get(nodeName);
    const { matches, skipped } = this.#catalog(selector).match(pod, { forceNamespaced: this.#options.forceNamespaced });
    const name = nameOf(pod);
    const namespace = namespaceOf(pod);
    const uid = pod.metadata?.uid;
    const items = matches.map((m): DesiredAssignment => {
      const { type, resourceId, clientId } = identityFacts(m.identity);
      const key = `${m.assignedIdentityNamespace}/${m.assignedIdentityName}`;
      return {
        key,
        name: m.assignedIdentityName,
        namespace: m.assignedIdentityNamespace,
        podKey,
        pod: name,
        podNamespace: namespace,
        podUid: uid,
        nodeName,
        identity: m.identity,
        binding: m.binding,
        identityType: type,
        resourceId,
        clientId,
        target,
      };
    });
    return { items, skipped };
  }

  #emit(change: DesiredStateChange): void {
    if (this.#listeners.length === 0 || (change.keys.length === 0 && change.targets.length === 0 && change.skipped.length === 0)) return;
    for (const listener of this.#listeners) listener(change);
  }
}

/**
 * What makes an AzureAssignedIdentity current: the identity's and binding's names and specs, the pod and the
 * node. v1.8 compared resourceVersions, so every status write on an identity or binding churned its
 * assignments; specs are what matter. Built when asked, not kept with each assignment: hashing it for the
 * annotation flattens it into one string of ~350 bytes, 3.3 MiB for 10,000 pods.
 */
export function assignmentFingerprint(identity: AzureIdentity, binding: AzureIdentityBinding, pod: string, podNamespace: string, node: string): string {
  // Kubernetes names cannot contain newlines, so joining with one is unambiguous.
  return `${objectFingerprint(identity)}\n${objectFingerprint(binding)}\n${pod}\n${podNamespace}\n${node}`;
}

/** The fingerprint of what `desired` is made from. */
export function desiredFingerprint(desired: DesiredAssignment): string {
  return assignmentFingerprint(desired.identity, desired.binding, desired.pod, desired.podNamespace, desired.nodeName);
}

/** Whether two assignments have equal fingerprints, compared part by part (each part's string is cached). */
function sameFingerprint(a: DesiredAssignment, b: DesiredAssignment): boolean {
  return (
    a.pod === b.pod &&
    a.podNamespace === b.podNamespace &&
    a.nodeName === b.nodeName &&
    (a.identity === b.identity || objectFingerprint(a.identity) === objectFingerprint(b.identity)) &&
    (a.binding === b.binding || objectFingerprint(a.binding) === objectFingerprint(b.binding))
  );
}

const fingerprints = new WeakMap<object, string>();

function objectFingerprint(object: AzureIdentity | AzureIdentityBinding): string {
  let fp = fingerprints.get(object);
  if (fp === undefined) {
    const spec = Object.fromEntries(Object.entries(object.spec).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    fp = JSON.stringify([namespaceOf(object), nameOf(object), spec]);
    fingerprints.set(object, fp);
  }
  return fp;
}
