/**
 * The REST verbs on stored objects — get, list, create, update, patch, delete, deletecollection — with the
 * Kubernetes semantics controllers rely on: optimistic concurrency, no-op updates that do not bump the
 * resourceVersion, finalizers and deletionTimestamp, namespace lifecycle (no creation in missing or
 * terminating namespaces; deletion cascades to the namespace's objects), CRD establishment and cleanup, graceful
 * deletion of pods (pod-termination.ts).
 */
import { CRD_CLEANUP_FINALIZER, CRD_STORAGE_KEY, establishedStatus, terminatingCondition } from "./crd-registry";
import type { ResourceRegistry } from "./crd-registry";
import type { ListOptions } from "./list-options";
import { encodeContinue, objectMatches } from "./list-options";
import type { FieldValidation } from "./object-rules";
import { formatTimestamp, prepareCreate, prepareUpdate } from "./object-rules";
import { applyConfiguration, recordUpdate } from "./managed-fields";
import type { FieldManagerContext } from "./managed-fields";
import { applyPatch, PATCH_CONTENT_TYPES } from "./patch";
import { GraceDeadlines, podGracePeriodSeconds, requestedGracePeriod, shortensGracePeriod } from "./pod-termination";
import type { KubeObject, ResourceDef } from "./resources";
import { apiVersionOf, metaOf, storageKey } from "./resources";
import type { Store } from "./store";
import { ExpiredError, objectKey } from "./store";
import { alreadyExists, badRequest, conflict, expired, forbidden, invalid, notFound, timeoutError } from "./status-errors";

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export interface WriteOptions {
  dryRun: boolean;
  fieldValidation: FieldValidation;
  /** The field manager (`?fieldManager`, else the User-Agent's product); none for the emulator's own writes. */
  manager?: string;
  /** Whether `?fieldManager` was given (apply needs it; other writes fall back to the User-Agent). */
  fieldManagerGiven?: boolean;
  /** `?force=true`: an apply takes conflicting fields from their managers. */
  force?: boolean;
}

export interface WriteResult {
  object: Json;
  warnings: string[];
  /** 201 for creates, 200 otherwise. */
  code: number;
}

/** Resources whose DELETE answers with the deleted object rather than a Success Status (as in Kubernetes). */
const RETURNS_DELETED_OBJECT = new Set(["pods", "namespaces", "nodes", "services", "customresourcedefinitions.apiextensions.k8s.io"]);

export interface ResourceOperationsOptions {
  /** How long one second of a pod's grace period lasts on the clock (ms); see KubeApiServerOptions. */
  podGracePeriodMsPerSecond: number;
}

export class ResourceOperations {
  readonly #store: Store;
  readonly #registry: ResourceRegistry;
  readonly #now: () => number;
  readonly #podGraceMsPerSecond: number;
  readonly #graceDeadlines: GraceDeadlines;
  #cleanupScheduled = false;

  constructor(store: Store, registry: ResourceRegistry, now: () => number, options: ResourceOperationsOptions) {
    this.#store = store;
    this.#registry = registry;
    this.#now = now;
    this.#podGraceMsPerSecond = options.podGracePeriodMsPerSecond;
    this.#graceDeadlines = new GraceDeadlines(now, () => this.expireGracePeriods());
  }

  /** Pods in their grace period (deletion requested, not yet removed). */
  get terminatingPods(): number {
    return this.#graceDeadlines.size;
  }

  /**
   * Removes every pod whose grace period has ended on the clock, as the kubelet does after its SIGKILL (a pod
   * with finalizers left keeps them: its grace period becomes 0 and it goes when they do). Returns how many went.
   */
  expireGracePeriods(): number {
    let removed = 0;
    for (const key of this.#graceDeadlines.takeDue()) {
      const [namespace, name] = splitKey(key);
      const pod = this.#store.get("pods", namespace, name);
      const meta = pod ? metaOf(pod) : undefined;
      if (!pod || !meta?.deletionTimestamp) continue;
      if ((meta.finalizers ?? []).length === 0) {
        this.#store.remove("pods", namespace, name);
        removed++;
      } else if ((meta.deletionGracePeriodSeconds ?? 0) !== 0) {
        const next = structuredClone(pod);
        metaOf(next).deletionGracePeriodSeconds = 0;
        this.#store.write("pods", next);
      }
    }
    if (removed > 0) this.#scheduleCleanup();
    return removed;
  }

  /** Forgets every grace period (the store was emptied, or the server stops). */
  forgetGracePeriods(): void {
    this.#graceDeadlines.clear();
  }

  /** The object as served in `def`'s version: apiVersion and kind of the URL. */
  present(def: ResourceDef, obj: KubeObject): Json {
    const { apiVersion: _a, kind: _k, ...rest } = obj;
    return { apiVersion: apiVersionOf(def), kind: def.kind, ...rest };
  }

  #ctx(def: ResourceDef, opts: WriteOptions) {
    return { def, nowIso: formatTimestamp(this.#now()), fieldValidation: opts.fieldValidation, warnings: [] as string[] };
  }

  #gr(def: ResourceDef) {
    return { group: def.group, resource: def.plural };
  }

  #existing(def: ResourceDef, namespace: string | undefined, name: string): KubeObject {
    const o = this.#store.get(storageKey(def), def.namespaced ? namespace : undefined, name);
    if (!o) throw notFound(this.#gr(def), name);
    return o;
  }

  get(def: ResourceDef, namespace: string | undefined, name: string): Json {
    return this.present(def, this.#existing(def, namespace, name));
  }

  list(def: ResourceDef, namespace: string | undefined, opts: ListOptions): Json {
    const key = storageKey(def);
    let rv = this.#store.resourceVersion;
    let items: KubeObject[];
    try {
      if (opts.continueToken) {
        rv = opts.continueToken.rv;
        items = this.#store.snapshot(key, rv);
      } else if (opts.resourceVersionMatch === "Exact" && opts.resourceVersion !== undefined) {
        rv = opts.resourceVersion;
        if (rv > this.#store.resourceVersion) throw this.#tooLarge(rv);
        items = this.#store.snapshot(key, rv);
      } else {
        if (opts.resourceVersion !== undefined && opts.resourceVersion > rv) throw this.#tooLarge(opts.resourceVersion);
        items = this.#store.list(key);
      }
    } catch (err) {
      if (!(err instanceof ExpiredError)) throw err;
      throw expired(
        opts.continueToken
          ? "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."
          : `too old resource version: ${err.requestedRv} (${err.oldestRv})`,
      );
    }
    const start = opts.continueToken?.start;
    let matching = items.filter((o) => {
      if (start !== undefined) {
        const m = metaOf(o);
        if (objectKey(m.namespace, m.name ?? "") <= start) return false;
      }
      return objectMatches(def, opts, def.namespaced ? namespace : undefined, o);
    });
    const metadata: Json = { resourceVersion: String(rv) };
    if (opts.limit > 0 && matching.length > opts.limit) {
      const remaining = matching.length - opts.limit;
      matching = matching.slice(0, opts.limit);
      const last = metaOf(matching[matching.length - 1] as KubeObject);
      metadata["continue"] = encodeContinue({ rv, start: objectKey(last.namespace, last.name ?? "") });
      if (!opts.filtered) metadata["remainingItemCount"] = remaining;
    }
    // Typed lists of built-in resources carry no kind/apiVersion per item; custom resource lists do.
    const present = def.schema
      ? (o: KubeObject) => this.present(def, o)
      : (o: KubeObject) => {
          const { apiVersion: _a, kind: _k, ...rest } = o;
          return rest;
        };
    return { kind: def.listKind, apiVersion: apiVersionOf(def), metadata, items: matching.map(present) };
  }

  #tooLarge(rv: number) {
    const err = timeoutError(`Too large resource version: ${rv}, current: ${this.#store.resourceVersion}`);
    return Object.assign(err, {
      details: { causes: [{ reason: "ResourceVersionTooLarge", message: "Too large resource version" }], retryAfterSeconds: 1 },
    });
  }

  #checkNamespace(def: ResourceDef, namespace: string | undefined, name: string): void {
    if (!def.namespaced || namespace === undefined) return;
    const ns = this.#store.get("namespaces", undefined, namespace);
    if (!ns) throw notFound({ group: "", resource: "namespaces" }, namespace);
    if (metaOf(ns).deletionTimestamp) {
      throw forbidden(this.#gr(def), name, `unable to create new content in namespace ${namespace} because it is being terminated`, [
        { reason: "NamespaceTerminating", message: `namespace ${namespace} is being terminated`, field: "metadata.namespace" },
      ]);
    }
  }

  create(def: ResourceDef, namespace: string | undefined, body: unknown, opts: WriteOptions): WriteResult {
    const ctx = this.#ctx(def, opts);
    const obj = prepareCreate(ctx, body, def.namespaced ? namespace : undefined);
    const meta = metaOf(obj);
    const name = meta.name ?? "";
    this.#checkNamespace(def, meta.namespace, name);
    if (this.#store.get(storageKey(def), meta.namespace, name)) throw alreadyExists(this.#gr(def), name);
    if (def.plural === "customresourcedefinitions" && def.group === "apiextensions.k8s.io") {
      meta.finalizers = [...new Set([...(meta.finalizers ?? []), CRD_CLEANUP_FINALIZER])];
    }
    if (opts.manager !== undefined && !Array.isArray(meta.managedFields)) {
      meta.managedFields = recordUpdate(def, undefined, obj, this.#fieldContext(def, opts.manager, undefined, ctx.nowIso));
    }
    if (opts.dryRun) return { object: this.present(def, obj), warnings: ctx.warnings, code: 201 };
    const stored = this.#store.write(storageKey(def), obj);
    if (storageKey(def) === CRD_STORAGE_KEY) this.#establishCrd(stored);
    return { object: this.present(def, stored), warnings: ctx.warnings, code: 201 };
  }

  /** What the apiextensions controllers do right after a CRD is written: accept names, establish, serve. */
  #establishCrd(crd: KubeObject): void {
    if (!metaOf(crd).deletionTimestamp) {
      const next = structuredClone(crd);
      next["status"] = establishedStatus(crd, formatTimestamp(this.#now()));
      if (JSON.stringify(next["status"]) !== JSON.stringify(crd["status"])) this.#store.write(CRD_STORAGE_KEY, next);
    }
    this.#registry.setCrds(this.#store.list(CRD_STORAGE_KEY));
  }

  update(def: ResourceDef, namespace: string | undefined, name: string, subresource: "status" | undefined, body: unknown, opts: WriteOptions): WriteResult {
    const existing = this.#existing(def, namespace, name);
    return this.#applyUpdate(def, namespace, name, subresource, body, existing, false, opts);
  }

  patch(def: ResourceDef, namespace: string | undefined, name: string, subresource: "status" | undefined, contentType: string, body: unknown, opts: WriteOptions): WriteResult {
    if ((contentType.split(";")[0] ?? "").trim().toLowerCase() === PATCH_CONTENT_TYPES.apply) return this.#serverSideApply(def, namespace, name, subresource, body, opts);
    if (opts.force) throw invalid("PatchOptions", "meta.k8s.io", "", [{ type: "Forbidden", field: "force", detail: "may not be specified for non-apply patch" }]);
    const existing = this.#existing(def, namespace, name);
    const patched = applyPatch(this.present(def, existing), contentType, body, def.strategicMerge);
    return this.#applyUpdate(def, namespace, name, subresource, patched, existing, true, opts);
  }

  #fieldContext(def: ResourceDef, manager: string | undefined, subresource: string | undefined, nowIso: string): FieldManagerContext {
    return { manager, apiVersion: apiVersionOf(def), nowIso, ...(subresource ? { subresource } : {}) };
  }

  /** PATCH with application/apply-patch+yaml (managed-fields.ts): create when absent, else merge with ownership. */
  #serverSideApply(def: ResourceDef, namespace: string | undefined, name: string, subresource: "status" | undefined, body: unknown, opts: WriteOptions): WriteResult {
    // kube-apiserver validates PatchOptions: an apply names its manager explicitly (the User-Agent does not count).
    if (!opts.fieldManagerGiven || !opts.manager) throw invalid("PatchOptions", "meta.k8s.io", "", [{ type: "Required", field: "fieldManager", detail: "is required for apply patch" }]);
    if (typeof body !== "object" || body === null || Array.isArray(body)) throw badRequest("apply patch must be a JSON or YAML object");
    const config = body as Json;
    const nowIso = formatTimestamp(this.#now());
    const fields = this.#fieldContext(def, opts.manager, subresource, nowIso);
    const existing = this.#store.get(storageKey(def), def.namespaced ? namespace : undefined, name);
    if (!existing) {
      if (subresource) throw notFound(this.#gr(def), name);
      const configName = metaOf(config).name;
      if (configName !== undefined && configName !== name) throw badRequest(`the name of the object (${configName}) does not match the name on the URL (${name})`);
      const merged = applyConfiguration(def, undefined, { ...config, metadata: { ...metaOf(config), name } }, fields, false);
      return this.create(def, namespace, merged, { ...opts, manager: undefined });
    }
    const live = this.present(def, existing);
    const merged = applyConfiguration(def, live, config, fields, opts.force === true);
    return this.#applyUpdate(def, namespace, name, subresource, merged, existing, true, { ...opts, manager: undefined }, true);
  }

  #applyUpdate(def: ResourceDef, namespace: string | undefined, name: string, subresource: "status" | undefined, body: unknown, existing: KubeObject, isPatch: boolean, opts: WriteOptions, keepManagedFields = false): WriteResult {
    const ctx = this.#ctx(def, opts);
    // managedFields are the server's: a body without them (or with a client's copy) keeps the stored ones, so an
    // otherwise unchanged write stays a no-op; the writer's ownership is recorded once the write is known.
    const storedFields = metaOf(existing).managedFields;
    let request = body;
    if (!keepManagedFields && isObject(body)) {
      const meta: Json = isObject(body["metadata"]) ? { ...body["metadata"] } : {};
      if (storedFields === undefined) delete meta["managedFields"];
      else meta["managedFields"] = storedFields;
      request = { ...body, metadata: meta };
    }
    const next = prepareUpdate(ctx, { body: request, existing, subresource, urlName: name, urlNamespace: def.namespaced ? namespace : undefined, isPatch });
    if (!next) return { object: this.present(def, existing), warnings: ctx.warnings, code: 200 };
    if (!keepManagedFields) {
      const entries = recordUpdate(def, existing, next, this.#fieldContext(def, opts.manager, subresource, ctx.nowIso));
      if (entries.length > 0) metaOf(next).managedFields = entries;
      else delete metaOf(next).managedFields;
    }
    if (opts.dryRun) return { object: this.present(def, next), warnings: ctx.warnings, code: 200 };
    const key = storageKey(def);
    const meta = metaOf(next);
    // A pod in its grace period stays until its kubelet (or the grace period's end) removes it.
    if (meta.deletionTimestamp && (meta.finalizers ?? []).length === 0 && (meta.deletionGracePeriodSeconds ?? 0) === 0 && !this.#blockedBySpecFinalizers(def, next)) {
      // The last finalizer of an object being deleted is gone: the object goes away now. As in Kubernetes the
      // watch sees one DELETED event (carrying the last stored state) and the caller gets the updated object.
      this.#store.remove(key, meta.namespace, name);
      if (key === "pods") this.#graceDeadlines.delete(objectKey(meta.namespace, name));
      this.#afterWrite(def);
      return { object: this.present(def, next), warnings: ctx.warnings, code: 200 };
    }
    const stored = this.#store.write(key, next);
    this.#afterWrite(def);
    return { object: this.present(def, stored), warnings: ctx.warnings, code: 200 };
  }

  #blockedBySpecFinalizers(def: ResourceDef, obj: KubeObject): boolean {
    if (def.group !== "" || def.kind !== "Namespace") return false;
    const fin = (obj["spec"] as Json | undefined)?.["finalizers"];
    return Array.isArray(fin) && fin.length > 0;
  }

  #afterWrite(def: ResourceDef): void {
    if (storageKey(def) === CRD_STORAGE_KEY) this.#registry.setCrds(this.#store.list(CRD_STORAGE_KEY));
    this.#scheduleCleanup();
  }

  delete(def: ResourceDef, namespace: string | undefined, name: string, options: unknown, dryRun: boolean): WriteResult {
    const existing = this.#existing(def, namespace, name);
    const opts = (options ?? {}) as Json;
    if (typeof opts !== "object" || Array.isArray(opts)) throw badRequest("DeleteOptions must be a JSON object");
    const policy = opts["propagationPolicy"];
    if (policy !== undefined && policy !== null && policy !== "Orphan" && policy !== "Background" && policy !== "Foreground") {
      throw invalid("DeleteOptions", "meta.k8s.io", "", [{ type: "NotSupported", field: "propagationPolicy", value: policy, supported: ["Foreground", "Background", "Orphan", "nil"] }]);
    }
    const pre = (opts["preconditions"] ?? {}) as Json;
    const meta = metaOf(existing);
    if (typeof pre["uid"] === "string" && pre["uid"] !== meta.uid) {
      throw conflict(this.#gr(def), name, `Precondition failed: UID in precondition: ${pre["uid"]}, UID in object meta: ${meta.uid ?? ""}`);
    }
    if (typeof pre["resourceVersion"] === "string" && pre["resourceVersion"] !== meta.resourceVersion) {
      throw conflict(this.#gr(def), name, `Precondition failed: ResourceVersion in precondition: ${pre["resourceVersion"]}, ResourceVersion in meta: ${meta.resourceVersion ?? ""}`);
    }
    if (policy === "Foreground") {
      // Foreground deletion needs the garbage collector's foregroundDeletion finalizer protocol, which is not
      // modelled: refuse it loudly instead of answering as if dependents had been deleted first.
      throw badRequest(
        `propagationPolicy "Foreground" is not supported by the testbed's API server (no foreground garbage collection): use "Background" (dependents are deleted after their owner) or "Orphan"`,
      );
    }
    const grace = requestedGracePeriod(opts["gracePeriodSeconds"]);
    if (dryRun) return { object: this.present(def, existing), warnings: [], code: 200 };
    const result = this.#deleteStored(def, existing, grace);
    if (policy === "Orphan") this.#orphanDependents(meta.uid);
    else if (result.removed) this.#collectGarbage(meta.uid);
    this.#scheduleCleanup();
    if (result.removed && !RETURNS_DELETED_OBJECT.has(storageKey(def)) && !def.schema) {
      const details: Json = { name, kind: def.plural, uid: meta.uid };
      if (def.group) details["group"] = def.group;
      return { object: { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success", details }, warnings: [], code: 200 };
    }
    return { object: this.present(def, result.object), warnings: [], code: 200 };
  }

  /** Objects whose ownerReferences name `uid`, with their served definition. */
  #dependentsOf(uid: string): Array<{ def: ResourceDef; object: KubeObject }> {
    const found: Array<{ def: ResourceDef; object: KubeObject }> = [];
    for (const key of this.#store.resources()) {
      const def = this.#registry.findByStorageKey(key);
      if (!def) continue;
      for (const o of this.#store.list(key)) {
        const refs = metaOf(o).ownerReferences;
        if (Array.isArray(refs) && refs.some((r) => (r as Json)["uid"] === uid)) found.push({ def, object: o });
      }
    }
    return found;
  }

  /**
   * The garbage collector's background deletion: once an owner is gone, each dependent none of whose owners
   * exist any more is deleted (with its own semantics: finalizers, pods' grace period), and so on down the chain.
   */
  #collectGarbage(ownerUid: string | undefined): void {
    const pending = ownerUid ? [ownerUid] : [];
    while (pending.length > 0) {
      const uid = pending.pop() as string;
      const live = new Set<string>();
      for (const key of this.#store.resources()) for (const o of this.#store.list(key)) if (metaOf(o).uid) live.add(metaOf(o).uid as string);
      for (const { def, object } of this.#dependentsOf(uid)) {
        const owners = (metaOf(object).ownerReferences ?? []).map((r) => (r as Json)["uid"]);
        if (owners.some((u) => typeof u === "string" && live.has(u)) || metaOf(object).deletionTimestamp) continue;
        const r = this.#deleteStored(def, object);
        if (r.removed) pending.push(metaOf(object).uid ?? "");
      }
    }
  }

  /** propagationPolicy=Orphan: the dependents lose their references to the deleted owner and stay. */
  #orphanDependents(ownerUid: string | undefined): void {
    if (!ownerUid) return;
    for (const { def, object } of this.#dependentsOf(ownerUid)) {
      const next = structuredClone(object);
      metaOf(next).ownerReferences = (metaOf(next).ownerReferences ?? []).filter((r) => (r as Json)["uid"] !== ownerUid);
      if (metaOf(next).ownerReferences?.length === 0) delete metaOf(next).ownerReferences;
      this.#store.write(storageKey(def), next);
    }
  }

  /** Deletes or marks an object for deletion (finalizers, namespaces, CRDs, pods' grace period). */
  #deleteStored(def: ResourceDef, existing: KubeObject, requestedGrace?: number): { object: KubeObject; removed: boolean } {
    const key = storageKey(def);
    const meta = metaOf(existing);
    if (key === "pods") return this.#deletePod(existing, requestedGrace);
    if (meta.deletionTimestamp) return { object: existing, removed: false };
    const nowIso = formatTimestamp(this.#now());
    const isNamespace = key === "namespaces";
    const isCrd = key === CRD_STORAGE_KEY;
    if (isNamespace || isCrd || (meta.finalizers ?? []).length > 0) {
      const next = structuredClone(existing);
      const m = metaOf(next);
      m.deletionTimestamp = nowIso;
      m.deletionGracePeriodSeconds = 0;
      if (isNamespace) next["status"] = { ...((next["status"] as Json) ?? {}), phase: "Terminating" };
      if (isCrd) {
        const status = (next["status"] as Json | undefined) ?? {};
        const conditions = Array.isArray(status["conditions"]) ? status["conditions"] : [];
        next["status"] = { ...status, conditions: [...conditions, terminatingCondition(nowIso)] };
      }
      return { object: this.#store.write(key, next), removed: false };
    }
    const removed = this.#store.remove(key, meta.namespace, meta.name ?? "");
    return { object: removed ?? existing, removed: true };
  }

  /**
   * A pod's DELETE: marked with its grace period and kept, or removed when the period is 0 and no finalizer is
   * left. A DELETE of a pod already terminating only ever shortens its period (0 removes it: a force deletion, or
   * the kubelet's final delete once the containers stopped).
   */
  #deletePod(existing: KubeObject, requested: number | undefined): { object: KubeObject; removed: boolean } {
    const meta = metaOf(existing);
    const name = meta.name ?? "";
    const key = objectKey(meta.namespace, name);
    const grace = podGracePeriodSeconds(existing, requested);
    if (meta.deletionTimestamp && !shortensGracePeriod(existing, grace, requested)) return { object: existing, removed: false };
    if (grace === 0 && (meta.finalizers ?? []).length === 0) {
      this.#graceDeadlines.delete(key);
      const removed = this.#store.remove("pods", meta.namespace, name);
      return { object: removed ?? existing, removed: true };
    }
    const nowMs = this.#now();
    const endsAtMs = nowMs + grace * this.#podGraceMsPerSecond;
    const next = structuredClone(existing);
    const m = metaOf(next);
    m.deletionTimestamp = formatTimestamp(endsAtMs);
    m.deletionGracePeriodSeconds = grace;
    const stored = this.#store.write("pods", next);
    if (grace > 0) this.#graceDeadlines.set(key, endsAtMs);
    else this.#graceDeadlines.delete(key);
    return { object: stored, removed: false };
  }

  deleteCollection(def: ResourceDef, namespace: string | undefined, opts: ListOptions, dryRun: boolean): Json {
    const list = this.list(def, namespace, { ...opts, limit: 0, continueToken: undefined });
    const items = (list["items"] as KubeObject[]).map((item) => {
      const stored = this.#existing(def, namespace, metaOf(item).name ?? "");
      return dryRun ? stored : this.#deleteStored(def, stored).object;
    });
    this.#scheduleCleanup();
    return { ...list, items: items.map((o) => this.present(def, o)) };
  }

  #scheduleCleanup(): void {
    if (this.#cleanupScheduled) return;
    this.#cleanupScheduled = true;
    setImmediate(() => {
      this.#cleanupScheduled = false;
      this.reconcileTerminating();
    });
  }

  /**
   * The namespace and CRD finalization controllers in one pass: delete the contents of terminating namespaces
   * and CRDs (objects with finalizers are only marked and block), then remove the emptied namespace or CRD.
   */
  reconcileTerminating(): void {
    for (const ns of this.#store.list("namespaces")) {
      const nsMeta = metaOf(ns);
      if (!nsMeta.deletionTimestamp) continue;
      for (const key of this.#store.resources()) {
        const def = this.#registry.findByStorageKey(key);
        for (const o of this.#store.list(key, nsMeta.name)) {
          if (!metaOf(o).deletionTimestamp && def) this.#deleteStored(def, o);
          else if (!def && !metaOf(o).finalizers?.length) this.#store.remove(key, nsMeta.name, metaOf(o).name ?? "");
        }
      }
      if (this.#store.resources().some((k) => this.#store.list(k, nsMeta.name).length > 0)) continue;
      const next = structuredClone(ns);
      next["spec"] = { ...((next["spec"] as Json) ?? {}), finalizers: [] };
      if ((nsMeta.finalizers ?? []).length > 0) {
        if (JSON.stringify(next["spec"]) !== JSON.stringify(ns["spec"])) this.#store.write("namespaces", next);
      } else {
        this.#store.remove("namespaces", undefined, nsMeta.name ?? "");
      }
    }
    for (const crd of this.#store.list(CRD_STORAGE_KEY)) {
      const meta = metaOf(crd);
      if (!meta.deletionTimestamp) continue;
      const spec = (crd["spec"] as Json | undefined) ?? {};
      const key = `${String((spec["names"] as Json | undefined)?.["plural"])}.${String(spec["group"])}`;
      const def = this.#registry.findByStorageKey(key);
      const objects = this.#store.list(key);
      for (const o of objects) if (!metaOf(o).deletionTimestamp && def) this.#deleteStored(def, o);
      if (this.#store.list(key).length > 0) continue;
      const finalizers = (meta.finalizers ?? []).filter((f) => f !== CRD_CLEANUP_FINALIZER);
      if (finalizers.length === 0) {
        this.#store.remove(CRD_STORAGE_KEY, undefined, meta.name ?? "");
      } else if (finalizers.length !== (meta.finalizers ?? []).length) {
        const next = structuredClone(crd);
        metaOf(next).finalizers = finalizers;
        this.#store.write(CRD_STORAGE_KEY, next);
      }
      this.#registry.setCrds(this.#store.list(CRD_STORAGE_KEY));
    }
  }

  /** Seeds the namespaces every cluster has. */
  seedDefaultNamespaces(): void {
    const def = this.#registry.find("", "v1", "namespaces");
    if (!def) return;
    for (const name of ["default", "kube-system", "kube-public", "kube-node-lease"]) {
      if (this.#store.get("namespaces", undefined, name)) continue;
      this.create(def, undefined, { apiVersion: "v1", kind: "Namespace", metadata: { name } }, { dryRun: false, fieldValidation: "Ignore" });
    }
  }
}

/** `objectKey`'s inverse: "ns/name" → [namespace, name] (undefined namespace for cluster-scoped keys). */
function splitKey(key: string): [string | undefined, string] {
  const slash = key.indexOf("/");
  return slash < 0 ? [undefined, key] : [key.slice(0, slash) || undefined, key.slice(slash + 1)];
}
