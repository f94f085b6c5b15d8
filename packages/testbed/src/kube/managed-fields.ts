/**
 * Field ownership (`metadata.managedFields`) and server-side apply, as kube-apiserver's structured-merge-diff does
 * for what `kubectl apply --server-side` and helm 4 use:
 * - every write records, per manager and operation, the fields it set, in the FieldsV1 encoding
 *   (`{"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}}}}}`): creates, updates and
 *   patches as `operation: Update` for their manager (`?fieldManager`, else the User-Agent up to its first `/`),
 *   taking the fields they changed from other managers; applies as `operation: Apply`;
 * - an apply merges its configuration into the live object (maps recursively, lists keyed by the built-in merge
 *   keys of patch.ts — containers and env by name, ports by containerPort — `finalizers` as a set, other lists
 *   atomically), removes the fields its manager applied before and no longer sends (unless another manager owns
 *   them), and refuses (409 Conflict, one cause per field) to change a value another manager owns unless `force`.
 * Not modelled: multi-key list maps (ports are keyed by containerPort alone), atomic structs (a LabelSelector is
 * owned field by field; kube-apiserver owns `f:selector` whole), CRD `x-kubernetes-list-type` and
 * `x-kubernetes-map-type` (custom resources' lists are atomic), managedFields sent by a client (the server keeps
 * its own), version conversion of field sets (entries keep the apiVersion they were written with).
 */
import { isMapField } from "./builtin-openapi";
import { mergeKeyFor, PRIMITIVE_MERGE_LISTS } from "./patch";
import type { ResourceDef } from "./resources";
import { KubeStatusError } from "./status-errors";

type Json = Record<string, unknown>;
type Path = string[];

export type ManagedOperation = "Apply" | "Update";

export interface ManagedFieldsEntry {
  manager: string;
  operation: ManagedOperation;
  apiVersion: string;
  time: string;
  fieldsType: "FieldsV1";
  fieldsV1: Json;
  subresource?: string;
}

/** Who writes, as kube-apiserver names them. */
export interface FieldManagerContext {
  /** undefined for the emulator's own writes: they own nothing, but still drop fields that are gone. */
  manager: string | undefined;
  apiVersion: string;
  nowIso: string;
  subresource?: string;
}

/** Object metadata the server owns: never part of a field set. */
const SERVER_METADATA = new Set(["name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"]);
/** Bounds one field set (a pod has a few hundred fields): a larger object is refused rather than walked forever. */
const MAX_FIELDS = 20_000;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** The manager of a request that names none: the User-Agent's product (`kubectl/v1.31 (…)` → `kubectl`). */
export function managerOf(fieldManager: string | null, userAgent: string | undefined): string {
  if (fieldManager) return fieldManager;
  return (userAgent ?? "").split("/")[0]?.slice(0, 128) ?? "";
}

function listKey(def: ResourceDef, field: string, names: string[]): string | undefined {
  return def.strategicMerge ? mergeKeyFor(field, names) : undefined;
}

function isSetList(def: ResourceDef, field: string, names: string[], items: unknown[]): boolean {
  return field === "finalizers" && names.length === 1 && names[0] === "metadata" && PRIMITIVE_MERGE_LISTS.has(field) && items.every((i) => typeof i === "string") && def !== undefined;
}

/** Every owned path of a value: leaves, keyed list items (their `.`), set-list values. */
function collect(def: ResourceDef, value: unknown, at: Path, names: string[], out: Map<string, Path>): void {
  if (out.size > MAX_FIELDS) throw new KubeStatusError(422, "Invalid", `the object has more than ${MAX_FIELDS} fields`);
  const add = (p: Path) => out.set(JSON.stringify(p), p);
  if (!isObject(value)) return;
  for (const [k, v] of Object.entries(value)) {
    if (at.length === 0 && (k === "apiVersion" || k === "kind")) continue;
    if (at.length === 1 && at[0] === "f:metadata" && SERVER_METADATA.has(k)) continue;
    const p = [...at, `f:${k}`];
    if (isObject(v) && Object.keys(v).length > 0) {
      collect(def, v, p, [...names, k], out);
    } else if (Array.isArray(v) && v.length > 0) {
      const key = listKey(def, k, names);
      if (key && v.every((item) => isObject(item) && item[key] !== undefined)) {
        for (const item of v as Json[]) {
          const ip = [...p, `k:${JSON.stringify({ [key]: item[key] })}`];
          add([...ip, "."]);
          collect(def, item, ip, [...names, k], out);
        }
      } else if (isSetList(def, k, names, v)) {
        for (const item of v) add([...p, `v:${JSON.stringify(item)}`]);
      } else {
        add(p);
      }
    } else {
      add(p);
    }
  }
}

function pathsOf(def: ResourceDef, obj: unknown, part: "all" | "main" | "status"): Map<string, Path> {
  const out = new Map<string, Path>();
  collect(def, obj, [], [], out);
  if (part === "all") return out;
  for (const [k, p] of out) if ((p[0] === "f:status") !== (part === "status")) out.delete(k);
  return out;
}

/** The value a path names in an object (undefined when absent); `.` names the list item itself. */
function valueAt(obj: unknown, path: Path): unknown {
  let cur: unknown = obj;
  for (const seg of path) {
    if (seg === ".") continue;
    if (seg.startsWith("f:")) cur = isObject(cur) ? cur[seg.slice(2)] : undefined;
    else if (seg.startsWith("k:")) {
      const key = JSON.parse(seg.slice(2)) as Json;
      cur = Array.isArray(cur) ? cur.find((i) => isObject(i) && Object.entries(key).every(([k, v]) => same(i[k], v))) : undefined;
    } else if (seg.startsWith("v:")) {
      const v = JSON.parse(seg.slice(2)) as unknown;
      cur = Array.isArray(cur) && cur.some((i) => same(i, v)) ? v : undefined;
    }
    if (cur === undefined) return undefined;
  }
  return cur;
}

/** Removes what a path names (a field, a keyed item, a set value). */
function removeAt(obj: Json, path: Path): void {
  const last = path[path.length - 1] === "." ? path.length - 2 : path.length - 1;
  const parent = valueAt(obj, path.slice(0, last));
  const seg = path[last] as string;
  if (seg.startsWith("f:") && isObject(parent)) delete parent[seg.slice(2)];
  else if (Array.isArray(parent)) {
    const target = valueAt(obj, path.slice(0, last + 1));
    const at = parent.findIndex((i) => i === target || same(i, target));
    if (at >= 0) parent.splice(at, 1);
  }
}

/**
 * FieldsV1 tree of a set of paths (keys sorted, `.` first, as kube-apiserver serialises them). A map or list item
 * owned as a whole is `.` beside its owned children, or `{}` when nothing inside it is owned (`"f:data": {}`).
 */
function encode(paths: Iterable<Path>): Json {
  const root: Json = {};
  for (const p of paths) {
    let node = root;
    for (const seg of p) node = (node[seg] ??= {}) as Json;
  }
  const sort = (n: Json): Json => {
    const keys = Object.keys(n);
    if (keys.length === 1 && keys[0] === ".") return {};
    return Object.fromEntries(keys.sort((a, b) => (a === "." ? -1 : b === "." ? 1 : a < b ? -1 : a > b ? 1 : 0)).map((k) => [k, sort(n[k] as Json)]));
  };
  return sort(root);
}

/**
 * The paths of a FieldsV1 tree written for `obj`. A leaf naming a list item, or a field whose value in `obj` is a
 * non-empty map, is that item or map owned as a whole: the `.` path, as `collect` and `recordUpdate` name it.
 */
function decode(obj: unknown, tree: unknown, at: Path = [], out = new Map<string, Path>()): Map<string, Path> {
  if (!isObject(tree)) return out;
  for (const [k, v] of Object.entries(tree)) {
    const p = [...at, k];
    if (isObject(v) && Object.keys(v).length > 0) {
      decode(obj, v, p, out);
      continue;
    }
    const value = k === "." ? undefined : valueAt(obj, p);
    const whole = k.startsWith("k:") || (k.startsWith("f:") && isObject(value) && Object.keys(value).length > 0);
    const path = whole ? [...p, "."] : p;
    out.set(JSON.stringify(path), path);
  }
  return out;
}

/** Whether an owned path still names something: a field or item in `all`, or a map (its `.`) still there. */
function stillPresent(obj: unknown, path: Path, all: Map<string, Path>, key: string): boolean {
  if (all.has(key)) return true;
  const parent = path.slice(0, -1);
  return path[path.length - 1] === "." && (parent[parent.length - 1] ?? "").startsWith("f:") && isObject(valueAt(obj, parent));
}

interface Owned {
  entry: Omit<ManagedFieldsEntry, "fieldsV1">;
  paths: Map<string, Path>;
}

function readEntries(obj: Json | undefined): Owned[] {
  const list = isObject(obj?.["metadata"]) ? (obj["metadata"] as Json)["managedFields"] : undefined;
  if (!Array.isArray(list)) return [];
  return list.filter(isObject).map((e) => {
    const { fieldsV1, ...entry } = e as unknown as ManagedFieldsEntry;
    return { entry, paths: decode(obj, fieldsV1) };
  });
}

/** kube-apiserver's order: Apply entries before Update ones, then by time, manager, apiVersion, subresource. */
function entryOrder(a: Owned, b: Owned): number {
  const key = (o: Owned) => [o.entry.operation, o.entry.time, o.entry.manager, o.entry.apiVersion, o.entry.subresource ?? ""];
  const [ka, kb] = [key(a), key(b)];
  for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return (ka[i] as string) < (kb[i] as string) ? -1 : 1;
  return 0;
}

function writeEntries(owned: Owned[]): ManagedFieldsEntry[] {
  return owned.filter((o) => o.paths.size > 0).sort(entryOrder).map((o) => ({ ...o.entry, fieldsType: "FieldsV1", fieldsV1: encode(o.paths.values()) }) as ManagedFieldsEntry);
}

function entryFor(owned: Owned[], ctx: FieldManagerContext, operation: ManagedOperation): Owned {
  const manager = ctx.manager ?? "";
  let found = owned.find((o) => o.entry.manager === manager && o.entry.operation === operation && (o.entry.subresource ?? "") === (ctx.subresource ?? ""));
  if (!found) {
    found = { entry: { manager, operation, apiVersion: ctx.apiVersion, time: ctx.nowIso, fieldsType: "FieldsV1", ...(ctx.subresource ? { subresource: ctx.subresource } : {}) }, paths: new Map() };
    owned.push(found);
  }
  return found;
}

/**
 * managedFields after a create, update or patch by `ctx.manager` (operation Update): it owns what it changed,
 * which no other manager owns any more; fields that are gone are nobody's.
 */
export function recordUpdate(def: ResourceDef, old: Json | undefined, next: Json, ctx: FieldManagerContext): ManagedFieldsEntry[] {
  const owned = readEntries(old);
  const all = pathsOf(def, next, "all");
  const changed = [...pathsOf(def, next, ctx.subresource === "status" ? "status" : def.statusSubresource ? "main" : "all")].filter(([, p]) => !same(valueAt(old, p), valueAt(next, p)));
  // A map this write brought into existence is owned as a whole too (`".": {}`), as kube-apiserver records it.
  for (const [, p] of [...changed]) {
    for (let i = 1; i < p.length; i++) {
      const at = p.slice(0, i);
      if (valueAt(old, at) !== undefined || !(at[at.length - 1] as string).startsWith("f:")) continue;
      const names = at.filter((seg) => seg.startsWith("f:")).map((seg) => seg.slice(2));
      const marker = [...at, "."];
      if (isMapField(def, names) && !changed.some(([k]) => k === JSON.stringify(marker))) changed.push([JSON.stringify(marker), marker]);
    }
  }
  const mine = changed.length > 0 && ctx.manager !== undefined ? entryFor(owned, ctx, "Update") : undefined;
  for (const o of owned) {
    for (const [k, p] of [...o.paths]) if (!stillPresent(next, p, all, k)) o.paths.delete(k);
    if (o !== mine) for (const [k] of changed) o.paths.delete(k);
  }
  if (mine) {
    for (const [k, p] of changed) mine.paths.set(k, p);
    mine.entry = { ...mine.entry, apiVersion: ctx.apiVersion, time: ctx.nowIso };
  }
  return writeEntries(owned);
}

function formatPath(path: Path): string {
  let out = "";
  for (const seg of path) {
    if (seg === ".") continue;
    if (seg.startsWith("f:")) out += `.${seg.slice(2)}`;
    else if (seg.startsWith("k:")) out += `[${Object.entries(JSON.parse(seg.slice(2)) as Json).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(",")}]`;
    else if (seg.startsWith("v:")) out += `[=${seg.slice(2)}]`;
  }
  return out;
}

/** How kube-apiserver names a manager in conflicts: Apply managers by name, Update managers with their version. */
function managerLabel(o: Owned): string {
  const sub = o.entry.subresource ? ` with subresource "${o.entry.subresource}"` : "";
  return o.entry.operation === "Update" ? `"${o.entry.manager}"${sub} using ${o.entry.apiVersion}` : `"${o.entry.manager}"${sub}`;
}

function conflictError(conflicts: { owner: Owned; path: Path }[]): KubeStatusError {
  const causes = conflicts.map((c) => ({ reason: "FieldManagerConflict", message: `conflict with ${managerLabel(c.owner)}`, field: formatPath(c.path) }));
  if (conflicts.length === 1) {
    const [only] = conflicts as [{ owner: Owned; path: Path }];
    return new KubeStatusError(409, "Conflict", `Apply failed with 1 conflict: conflict with ${managerLabel(only.owner)}: ${formatPath(only.path)}`, { causes });
  }
  const byManager = new Map<string, string[]>();
  for (const c of conflicts) byManager.set(managerLabel(c.owner), [...(byManager.get(managerLabel(c.owner)) ?? []), formatPath(c.path)]);
  const lines = [...byManager.keys()].sort().flatMap((who) => [`conflicts with ${who}:`, ...(byManager.get(who) ?? []).map((f) => `- ${f}`)]);
  return new KubeStatusError(409, "Conflict", `Apply failed with ${conflicts.length} conflicts: ${lines.join("\n")}`, { causes });
}

/** The configuration merged into the live object: maps recursively, keyed lists by key, sets as sets. */
function merge(def: ResourceDef, live: unknown, config: unknown, names: string[], field: string | undefined): unknown {
  if (isObject(config)) {
    const out: Json = isObject(live) ? { ...live } : {};
    for (const [k, v] of Object.entries(config)) {
      if (v === null) delete out[k];
      else out[k] = merge(def, out[k], v, field === undefined ? names : [...names, field], k);
    }
    return out;
  }
  if (Array.isArray(config) && Array.isArray(live) && field !== undefined) {
    const key = listKey(def, field, names);
    if (key && config.every((i) => isObject(i) && i[key] !== undefined) && live.every((i) => isObject(i))) {
      const out = [...live] as unknown[];
      for (const item of config as Json[]) {
        const at = out.findIndex((i) => same((i as Json)[key], item[key]));
        if (at >= 0) out[at] = merge(def, out[at], item, [...names, field], undefined);
        else out.push(structuredClone(item));
      }
      return out;
    }
    if (isSetList(def, field, names, config) && live.every((i) => typeof i === "string")) {
      return [...live, ...config.filter((i) => !live.includes(i))];
    }
  }
  return structuredClone(config);
}

/**
 * Server-side apply of `config` by `ctx.manager` onto `live` (undefined: create-on-apply). Returns the object to
 * store (before the usual create/update rules) with its managedFields; throws 409 on conflicts unless `force`.
 */
export function applyConfiguration(def: ResourceDef, live: Json | undefined, config: Json, ctx: FieldManagerContext, force: boolean): Json {
  const owned = readEntries(live);
  const applied = pathsOf(def, config, def.statusSubresource && ctx.subresource !== "status" ? "main" : "all");
  const mine = entryFor(owned, ctx, "Apply");
  const conflicts: { path: Path; owner: Owned }[] = [];
  for (const [k, p] of applied) {
    if (p[p.length - 1] === ".") continue;
    const current = valueAt(live, p);
    if (current === undefined || same(current, valueAt(config, p))) continue;
    for (const o of owned) if (o !== mine && o.paths.has(k)) conflicts.push({ path: p, owner: o });
  }
  if (conflicts.length > 0 && !force) throw conflictError(conflicts);
  for (const c of conflicts) c.owner.paths.delete(JSON.stringify(c.path));
  const { metadata: configMeta, ...configRest } = config;
  const merged = merge(def, live ?? {}, { ...configRest, metadata: configMeta ?? {} }, [], undefined) as Json;
  // Fields this manager applied before and no longer sends go, unless someone else owns them (or, for a list
  // item, anything inside it).
  const dropped = [...mine.paths].filter(([k]) => !applied.has(k)).sort((a, b) => b[1].length - a[1].length);
  for (const [k, p] of dropped) {
    const prefix = JSON.stringify(p[p.length - 1] === "." ? p.slice(0, -1) : p).slice(0, -1);
    const kept = owned.some((o) => o !== mine && [...o.paths.keys()].some((ok) => ok === k || ok.startsWith(prefix)));
    if (!kept) removeAt(merged, p);
  }
  // The entry's time moves only when what it owns changes: re-applying the same configuration is a no-op.
  const unchanged = mine.paths.size === applied.size && [...applied.keys()].every((k) => mine.paths.has(k)) && mine.entry.apiVersion === ctx.apiVersion;
  mine.paths = applied;
  if (!unchanged) mine.entry = { ...mine.entry, apiVersion: ctx.apiVersion, time: ctx.nowIso };
  const all = pathsOf(def, merged, "all");
  for (const o of owned) if (o !== mine) for (const [k, p] of [...o.paths]) if (!stillPresent(merged, p, all, k)) o.paths.delete(k);
  const meta = isObject(merged["metadata"]) ? (merged["metadata"] as Json) : {};
  merged["metadata"] = { ...meta, managedFields: writeEntries(owned) };
  return merged;
}
