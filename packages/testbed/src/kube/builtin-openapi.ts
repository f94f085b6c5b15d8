/**
 * OpenAPI v3 component schemas of the built-in kinds, for `kubectl explain` (and any client that reads
 * `/openapi/v3`). Nothing is written by hand: the structure — fields, types, formats, nested types — comes from
 * @kubernetes/client-node's generated models (`attributeTypeMap`, the same source builtin-schemas.ts decodes with),
 * and the documentation — type and field descriptions, required fields, enum values — from the declaration files
 * kubernetes-models generates from the Kubernetes OpenAPI (`v1/PodSpec.d.ts`: the JSDoc above each field).
 * Strategic-merge metadata (`x-kubernetes-patch-merge-key`, `x-kubernetes-patch-strategy`: list keys and the
 * "replace"/"retainKeys" struct fields) is the emulator's own (patch.ts), so a client that computes patches from
 * these schemas merges exactly as the emulator applies them — and as against a real server, whose tags these are.
 *
 * Each kind's schemas are built once per process and shared by every server: the built-in types never change.
 */
import * as clientNode from "@kubernetes/client-node";
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join, resolve } from "node:path";
import { FIELD_PATCH_STRATEGIES, mergeKeyFor, PRIMITIVE_MERGE_LISTS } from "./patch";
import type { ResourceDef } from "./resources";

type Json = Record<string, unknown>;

interface Attribute {
  name: string;
  baseName: string;
  type: string;
  format: string;
}

/** What the declaration file says about one type: its doc, and per field the doc, required-ness and enum. */
interface TypeDocs {
  description?: string;
  fields: Map<string, { description?: string; required: boolean; enum?: string[]; ref?: string }>;
  /** Imported type name → resolved declaration file. */
  imports: Map<string, string>;
}

const ARRAY = /^Array<(.+)>$/;
const MAP = /^\{ \[key: string\]: (.+); \}$/;
/** Bounds the walk: Pod's closure is ~130 types; a runaway (a model graph bug) stops here instead of growing. */
const MAX_TYPES_PER_KIND = 1000;

function packageDir(name: string, fromDir: string): string | undefined {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return realpathSync(candidate);
    if (dirname(dir) === dir) return undefined;
  }
}

let modelsRoot: string | null | undefined;

/** kubernetes-models' folder (its `exports` only allow `import`, so it is found by the node_modules walk). */
function kubernetesModelsDir(): string | undefined {
  if (modelsRoot === undefined) {
    const require = createRequire(typeof __filename === "string" ? __filename : import.meta.url);
    const paths = require.resolve.paths("kubernetes-models") ?? [];
    const found = paths.map((p) => join(p, "kubernetes-models")).find((p) => existsSync(join(p, "package.json")));
    modelsRoot = found ? realpathSync(found) : null;
  }
  return modelsRoot ?? undefined;
}

function resolveImport(spec: string, fromFile: string): string | undefined {
  if (spec.startsWith(".")) return resolve(dirname(fromFile), spec.replace(/\.js$/, "") + ".d.ts");
  const parts = spec.split("/");
  const pkg = spec.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] as string);
  const dir = packageDir(pkg, dirname(fromFile));
  return dir ? join(dir, spec.slice(pkg.length + 1).replace(/\.js$/, "") + ".d.ts") : undefined;
}

function jsdocText(block: string): string {
  return block
    .split("\n")
    .map((l) => l.replace(/^\s*\*\s?/, ""))
    .join("\n")
    .trim();
}

const docsCache = new Map<string, TypeDocs | undefined>();

/** Parses the first interface of a kubernetes-models declaration file (the one that carries the docs). */
function typeDocs(file: string): TypeDocs | undefined {
  if (docsCache.has(file)) return docsCache.get(file);
  let docs: TypeDocs | undefined;
  if (existsSync(file)) {
    const text = readFileSync(file, "utf8");
    const imports = new Map<string, string>();
    for (const m of text.matchAll(/^import \{ ([^}]+) \} from "([^"]+)";$/gm)) {
      const target = resolveImport(m[2] as string, file);
      if (!target) continue;
      for (const name of (m[1] as string).split(",").map((s) => s.trim())) imports.set(name, target);
    }
    // The first interface (or, for a scalar such as IntOrString, type alias) is the documented one.
    const start = text.search(/^export (?:interface|type) I\w+/m);
    if (start >= 0) {
      const head = /\/\*\*\n([\s\S]*?)\*\/\n$/.exec(text.slice(0, start));
      const end = text.indexOf("\n}\n", start);
      const body = text.startsWith("export interface", start) && end > 0 ? text.slice(start, end) : "";
      const fields: TypeDocs["fields"] = new Map();
      for (const m of body.matchAll(/(?:\/\*\*\n([\s\S]*?)\*\/\n)?\s*"([^"]+)"(\?)?: ([^\n]*)/g)) {
        const [, doc, name, optional, type] = m as unknown as [string, string | undefined, string, string | undefined, string];
        const literals = /^("[^"]*"(?: \| "[^"]*")*);$/.exec(type);
        const ref = /(IIoK8s\w+)/.exec(type)?.[1];
        fields.set(name, {
          ...(doc ? { description: jsdocText(doc) } : {}),
          required: optional === undefined && name !== "apiVersion" && name !== "kind",
          ...(literals && name !== "apiVersion" && name !== "kind" ? { enum: (literals[1] as string).split(" | ").map((s) => JSON.parse(s) as string) } : {}),
          ...(ref && imports.has(ref) ? { ref: imports.get(ref) as string } : {}),
        });
      }
      docs = { ...(head ? { description: jsdocText(head[1] as string) } : {}), fields, imports };
    }
  }
  docsCache.set(file, docs);
  return docs;
}

function attributesOf(model: string): Attribute[] | undefined {
  const cls = (clientNode as unknown as Record<string, { getAttributeTypeMap?: () => Attribute[] } | undefined>)[model];
  return cls?.getAttributeTypeMap?.();
}

/**
 * The component name the real server uses (`io.k8s.api.core.v1.PodSpec`), from kubernetes-models' exported alias
 * (`IIoK8sApiCoreV1PodSpec` in `PodSpec.d.ts`): the words before the type name are the package path, lower-cased.
 */
function componentName(file: string, fallback: string): string {
  const typeName = basename(file, ".d.ts");
  const m = /export type \{ I\w+ as I(IoK8s\w+),/.exec(readFileSync(file, "utf8"));
  const id = m?.[1];
  if (!id || !id.endsWith(typeName)) return fallback;
  const words = id.slice(0, id.length - typeName.length).match(/[A-Z][a-z0-9]*/g) ?? [];
  return [...words.map((w) => w.toLowerCase()), typeName].join(".");
}

interface Walk {
  schemas: Record<string, Json>;
  names: Map<string, string>;
}

/** The schema of one model and (recursively) of the models it uses, added to `walk.schemas`; returns its name. */
function addModel(walk: Walk, model: string, file: string | undefined): string {
  const known = walk.names.get(model);
  if (known) return known;
  if (walk.names.size >= MAX_TYPES_PER_KIND) throw new Error(`built-in OpenAPI: more than ${MAX_TYPES_PER_KIND} types under ${model}`);
  const name = file && existsSync(file) ? componentName(file, model) : model;
  walk.names.set(model, name);
  const docs = file ? typeDocs(file) : undefined;
  const properties: Record<string, Json> = {};
  const required: string[] = [];
  for (const attr of attributesOf(model) ?? []) {
    const field = docs?.fields.get(attr.baseName);
    const schema = propertySchema(walk, attr.type, attr.format, field?.ref);
    if (field?.description) schema["description"] = field.description;
    if (field?.enum) schema["enum"] = field.enum;
    if (schema["type"] === "array") {
      const key = mergeKeyFor(attr.baseName, model === "V1Container" || model === "V1EphemeralContainer" ? ["containers"] : []);
      if (key) Object.assign(schema, { "x-kubernetes-patch-merge-key": key, "x-kubernetes-patch-strategy": "merge" });
      else if (PRIMITIVE_MERGE_LISTS.has(attr.baseName)) schema["x-kubernetes-patch-strategy"] = "merge";
    }
    const strategy = FIELD_PATCH_STRATEGIES[model.replace(/^V\d+(?:(?:alpha|beta)\d+)?/, "")]?.[attr.baseName];
    if (strategy) schema["x-kubernetes-patch-strategy"] = strategy;
    if (field?.required) required.push(attr.baseName);
    properties[attr.baseName] = schema;
  }
  walk.schemas[name] = {
    ...(docs?.description ? { description: docs.description } : {}),
    type: "object",
    ...(required.length ? { required } : {}),
    properties,
  };
  return name;
}

function propertySchema(walk: Walk, type: string, format: string, refFile: string | undefined): Json {
  const array = ARRAY.exec(type);
  if (array) return { type: "array", items: propertySchema(walk, array[1] as string, format, refFile) };
  const map = MAP.exec(type);
  if (map) return { type: "object", additionalProperties: propertySchema(walk, map[1] as string, format, refFile) };
  // client-node types IntOrString fields as plain strings; kubernetes-models' declaration names the real type.
  const scalar = refFile !== undefined && basename(refFile) === "IntOrString.d.ts" ? "IntOrString" : type;
  switch (scalar) {
    case "string":
      return { type: "string", ...(format ? { format } : {}) };
    case "boolean":
      return { type: "boolean" };
    case "number":
      return format === "int32" || format === "int64" ? { type: "integer", format } : { type: "number", format: format || "double" };
    case "Date":
      return { type: "string", format: "date-time" };
    case "IntOrString": {
      // A component of its own on a real server, so explain names it `<IntOrString>`.
      const name = refFile && existsSync(refFile) ? componentName(refFile, "IntOrString") : "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
      const description = refFile ? typeDocs(refFile)?.description : undefined;
      walk.schemas[name] ??= { ...(description ? { description } : {}), type: "string", format: "int-or-string" };
      return { allOf: [{ $ref: `#/components/schemas/${name}` }] };
    }
    case "any":
    case "object":
      return { type: "object" };
    default:
      if (!attributesOf(type)) return { type: "object" };
      return { allOf: [{ $ref: `#/components/schemas/${addModel(walk, type, refFile)}` }], default: {} };
  }
}

/** client-node's model for a built-in kind: `V1Pod`, `V1Deployment`; the core Event is `CoreV1Event`. */
function modelOf(def: ResourceDef): string {
  const version = def.version.charAt(0).toUpperCase() + def.version.slice(1);
  if (def.group === "" && def.kind === "Event") return `Core${version}Event`;
  return `${version}${def.kind}`;
}

const kindCache = new Map<string, { name: string; schemas: Record<string, Json> } | undefined>();

/**
 * The component schemas of a built-in kind (its own and every type it uses) and its component name; undefined for
 * kinds neither source knows. The kind's schema carries `x-kubernetes-group-version-kind`, which is how kubectl
 * finds it.
 */
export function builtinKindSchemas(def: ResourceDef): { name: string; schemas: Record<string, Json> } | undefined {
  const key = `${def.group}/${def.version}/${def.kind}`;
  if (kindCache.has(key)) return kindCache.get(key);
  let out: { name: string; schemas: Record<string, Json> } | undefined;
  const model = modelOf(def);
  const root = kubernetesModelsDir();
  if (attributesOf(model) && root) {
    const file = join(root, def.group ? `${def.group}/${def.version}` : def.version, `${def.kind}.d.ts`);
    const walk: Walk = { schemas: {}, names: new Map() };
    const name = addModel(walk, model, file);
    walk.schemas[name] = { ...walk.schemas[name], "x-kubernetes-group-version-kind": [{ group: def.group, version: def.version, kind: def.kind }] };
    out = { name, schemas: walk.schemas };
  }
  kindCache.set(key, out);
  return out;
}

let objectMeta: { name: string; schemas: Record<string, Json>; description?: string } | null | undefined;

/**
 * ObjectMeta's component schemas and the standard `metadata` field description, for custom resources: a real
 * server publishes a CRD's `metadata` as a reference to ObjectMeta whatever its schema says.
 */
export function objectMetaSchemas(): { name: string; schemas: Record<string, Json>; description?: string } | undefined {
  if (objectMeta === undefined) {
    const root = kubernetesModelsDir();
    const pod = root ? typeDocs(join(root, "v1", "Pod.d.ts")) : undefined;
    const file = pod?.fields.get("metadata")?.ref;
    if (!file || !attributesOf("V1ObjectMeta")) objectMeta = null;
    else {
      const walk: Walk = { schemas: {}, names: new Map() };
      const name = addModel(walk, "V1ObjectMeta", file);
      const description = pod?.fields.get("metadata")?.description;
      objectMeta = { name, schemas: walk.schemas, ...(description ? { description } : {}) };
    }
  }
  return objectMeta ?? undefined;
}

/**
 * Whether the field at `names` (field names from the object's root; a list's items are entered by the list's name)
 * is a map (`labels`, `data`, `nodeSelector`) rather than a struct: kube-apiserver records a map's own presence in
 * managedFields (`".": {}`). Built-ins answer from client-node's models, custom resources from their schema.
 */
export function isMapField(def: ResourceDef, names: string[]): boolean {
  if (names.length === 0) return false;
  if (def.schema && names[0] !== "metadata") {
    let s: ResourceDef["schema"] = def.schema;
    for (const n of names) {
      if (s?.type === "array") s = s.items;
      s = s?.properties?.[n] ?? (typeof s?.additionalProperties === "object" ? s.additionalProperties : undefined);
    }
    return s !== undefined && s.properties === undefined && typeof s.additionalProperties === "object";
  }
  let type = names[0] === "metadata" ? "V1ObjectMeta" : modelOf(def);
  for (const n of names[0] === "metadata" ? names.slice(1) : names) {
    const inner = ARRAY.exec(type)?.[1] ?? type;
    const attr = attributesOf(inner)?.find((a) => a.baseName === n);
    if (!attr) return false;
    type = attr.type;
  }
  return MAP.test(type);
}
