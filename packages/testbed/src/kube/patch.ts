/**
 * The three PATCH formats of the Kubernetes API: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and
 * strategic merge patch. Strategic merge follows the rules kubectl's client-side apply relies on: lists with a
 * patch merge key (containers by name, ports by containerPort, ...) merge element-wise, `finalizers` merges as a
 * set, other lists are replaced, and the `$patch`, `$setElementOrder/`, `$deleteFromPrimitiveList/` and
 * `$retainKeys` directives are honoured. Merge keys come from a table of the built-in types' Go struct tags.
 */
import jsonPatch from "fast-json-patch";
import { badRequest, KubeStatusError, unsupportedMediaType } from "./status-errors";

type Json = Record<string, unknown>;

export const PATCH_CONTENT_TYPES = {
  json: "application/json-patch+json",
  merge: "application/merge-patch+json",
  strategic: "application/strategic-merge-patch+json",
  apply: "application/apply-patch+yaml",
} as const;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** RFC 7386: objects merge recursively, null deletes, everything else (arrays included) replaces. */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  const out: Json = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v);
  }
  return out;
}

/** Patch merge keys of list fields in the built-in types (from their `patchMergeKey` struct tags). */
export function mergeKeyFor(field: string, path: string[]): string | undefined {
  switch (field) {
    case "containers":
    case "initContainers":
    case "ephemeralContainers":
    case "volumes":
    case "env":
    case "imagePullSecrets":
    case "secrets":
    case "resourceClaims":
      return "name";
    case "volumeMounts":
      return "mountPath";
    case "volumeDevices":
      return "devicePath";
    case "ports":
      return path.some((p) => p === "containers" || p === "initContainers" || p === "ephemeralContainers")
        ? "containerPort"
        : "port";
    case "conditions":
    case "addresses":
      return "type";
    case "ownerReferences":
      return "uid";
    case "hostAliases":
      return "ip";
    case "topologySpreadConstraints":
      return "topologyKey";
    case "taints":
      return "key";
    default:
      return undefined;
  }
}

/** Lists of primitives merged as sets (patchStrategy "merge" without a key). */
export const PRIMITIVE_MERGE_LISTS = new Set(["finalizers"]);

/**
 * Patch strategies of struct fields in the built-in types, by the Go type holding the field (its `patchStrategy`
 * struct tag): a "replace" field is replaced whole by a strategic merge patch (kubectl's client-side apply then
 * always sends it, as against a real server); "retainKeys" fields get `$retainKeys` from clients.
 */
export const FIELD_PATCH_STRATEGIES: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  PodDisruptionBudgetSpec: { selector: "replace" },
  DeploymentSpec: { strategy: "retainKeys" },
  PodSpec: { volumes: "merge,retainKeys" },
};

/** The Go type of the map at `path` in an object of `kind`, as far as FIELD_PATCH_STRATEGIES needs it. */
function typeAt(kind: string | undefined, path: string[]): string | undefined {
  return kind !== undefined && path.length === 1 && path[0] === "spec" ? `${kind}Spec` : undefined;
}

const SET_ORDER = "$setElementOrder/";
const DELETE_PRIMITIVE = "$deleteFromPrimitiveList/";

function stripDirectives(value: unknown): unknown {
  if (Array.isArray(value)) return value.filter((v) => !(isObject(v) && v["$patch"] === "delete")).map(stripDirectives);
  if (!isObject(value)) return value;
  const out: Json = {};
  for (const [k, v] of Object.entries(value)) {
    if (k.startsWith("$")) continue;
    out[k] = stripDirectives(v);
  }
  return out;
}

function smpMap(original: Json, patch: Json, path: string[], kind?: string): Json | undefined {
  const directive = patch["$patch"];
  if (directive === "replace") return stripDirectives(patch) as Json;
  if (directive === "delete") return undefined;
  if (directive !== undefined && directive !== "merge") throw badRequest(`Unknown patch type: ${String(directive)}`);
  const out: Json = { ...original };
  const orders = new Map<string, unknown[]>();
  for (const [key, value] of Object.entries(patch)) {
    if (key === "$patch" || key === "$retainKeys") continue;
    if (key.startsWith(SET_ORDER)) {
      if (Array.isArray(value)) orders.set(key.slice(SET_ORDER.length), value);
      continue;
    }
    if (key.startsWith(DELETE_PRIMITIVE)) {
      const field = key.slice(DELETE_PRIMITIVE.length);
      const current = out[field];
      if (Array.isArray(value) && Array.isArray(current)) {
        out[field] = current.filter((v) => !value.some((d) => JSON.stringify(d) === JSON.stringify(v)));
      }
      continue;
    }
    if (value === null) {
      delete out[key];
      continue;
    }
    const existing = out[key];
    const type = typeAt(kind, path);
    if (isObject(value) && isObject(existing) && type !== undefined && FIELD_PATCH_STRATEGIES[type]?.[key] === "replace") {
      out[key] = stripDirectives(value);
    } else if (isObject(value) && isObject(existing)) {
      const merged = smpMap(existing, value, [...path, key], kind);
      if (merged === undefined) delete out[key];
      else out[key] = merged;
    } else if (Array.isArray(value) && Array.isArray(existing)) {
      out[key] = smpList(existing, value, key, path);
    } else if (isObject(value) && value["$patch"] === "delete") {
      delete out[key];
    } else {
      out[key] = stripDirectives(value);
    }
  }
  for (const [field, order] of orders) {
    const list = out[field];
    if (Array.isArray(list)) out[field] = reorder(list, order, mergeKeyFor(field, path));
  }
  const retain = patch["$retainKeys"];
  if (Array.isArray(retain)) {
    for (const k of Object.keys(out)) if (!retain.includes(k)) delete out[k];
  }
  return out;
}

function smpList(original: unknown[], patch: unknown[], field: string, path: string[]): unknown[] {
  const key = mergeKeyFor(field, path);
  if (key) {
    if (patch.some((p) => isObject(p) && p["$patch"] === "replace")) {
      return stripDirectives(patch.filter((p) => !(isObject(p) && p["$patch"] === "replace"))) as unknown[];
    }
    const out = [...original];
    for (const p of patch) {
      if (!isObject(p)) throw badRequest(`strategic merge patch: list ${field} expects objects with merge key ${key}`);
      const at = out.findIndex((o) => isObject(o) && JSON.stringify(o[key]) === JSON.stringify(p[key]));
      if (p["$patch"] === "delete") {
        if (at >= 0) out.splice(at, 1);
      } else if (at >= 0) {
        out[at] = smpMap(out[at] as Json, p, [...path, field]);
      } else {
        out.push(stripDirectives(p));
      }
    }
    return out.filter((o) => o !== undefined);
  }
  if (PRIMITIVE_MERGE_LISTS.has(field)) {
    const out = [...original];
    for (const p of patch) if (!out.some((o) => JSON.stringify(o) === JSON.stringify(p))) out.push(p);
    return out;
  }
  return stripDirectives(patch) as unknown[];
}

function reorder(list: unknown[], order: unknown[], key: string | undefined): unknown[] {
  const id = (v: unknown) => JSON.stringify(key && isObject(v) ? v[key] : v);
  const rank = new Map(order.map((o, i) => [id(o), i]));
  const ranked = list.filter((v) => rank.has(id(v))).sort((a, b) => (rank.get(id(a)) ?? 0) - (rank.get(id(b)) ?? 0));
  return [...ranked, ...list.filter((v) => !rank.has(id(v)))];
}

export function applyStrategicMergePatch(original: Json, patch: unknown): Json {
  if (!isObject(patch)) throw badRequest("strategic merge patch must be a JSON object");
  return smpMap(original, patch, [], typeof original["kind"] === "string" ? original["kind"] : undefined) ?? {};
}

/**
 * Applies a PATCH body of the given content type to `original`. Throws 415 for an unsupported type (and for
 * strategic merge on custom resources, as Kubernetes), 400 for a malformed patch, 422 when a JSON patch cannot
 * be applied.
 */
export function applyPatch(original: Json, contentType: string, body: unknown, strategicAllowed: boolean): Json {
  const type = contentType.split(";")[0]?.trim().toLowerCase() ?? "";
  const accepted: string[] = [PATCH_CONTENT_TYPES.json, PATCH_CONTENT_TYPES.merge];
  if (strategicAllowed) accepted.push(PATCH_CONTENT_TYPES.strategic);
  switch (type) {
    case PATCH_CONTENT_TYPES.merge: {
      if (!isObject(body)) throw badRequest("merge patch must be a JSON object");
      return applyMergePatch(original, body) as Json;
    }
    case PATCH_CONTENT_TYPES.strategic:
      if (!strategicAllowed) throw unsupportedMediaType(type, accepted);
      return applyStrategicMergePatch(original, body);
    case PATCH_CONTENT_TYPES.json: {
      if (!Array.isArray(body)) throw badRequest("json patch must be a JSON array of operations");
      try {
        const result = jsonPatch.applyPatch(structuredClone(original), body as never, true, true, true);
        const doc = result.newDocument as unknown;
        if (!isObject(doc)) throw badRequest("json patch must leave a JSON object");
        return doc;
      } catch (err) {
        if (err instanceof KubeStatusError) throw err;
        // fast-json-patch throws JsonPatchError for an invalid operation or a failed "test": both are the
        // request's fault. Kubernetes reports them as 422 on the field "patch".
        const message = err instanceof Error ? err.message.split("\n")[0] ?? err.message : String(err);
        throw new KubeStatusError(422, "Invalid", `the server rejected our request due to an error in our request: ${message}`, {
          causes: [{ reason: "FieldValueInvalid", message, field: "patch" }],
        });
      }
    }
    default:
      throw unsupportedMediaType(type, accepted);
  }
}
