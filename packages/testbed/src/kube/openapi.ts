/**
 * OpenAPI v3 documents (`/openapi/v3` and one per group-version) for what is served. kubectl reads them to
 * decide how to validate and patch, and `kubectl explain` reads its field docs from them: a PATCH operation tagged
 * with the resource's group-version-kind and a `fieldValidation` parameter makes kubectl use server-side field
 * validation (otherwise `create -f` needs the full v2 schema); offering `application/strategic-merge-patch+json`
 * only for built-ins makes `apply` compute a merge patch for custom resources. Custom resources get their CRD
 * schema as a component; built-in kinds get schemas generated from maintained models (builtin-openapi.ts), whose
 * list merge keys are the emulator's own, so kubectl's client-side apply merges lists as the emulator does.
 *
 * Documents are built once per set of served resources (they only change when a CRD does) and answered with an
 * ETag; the index names each one with its content hash, as kube-apiserver does, so kubectl caches them on disk.
 */
import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { builtinKindSchemas, objectMetaSchemas } from "./builtin-openapi";
import type { ResourceRegistry } from "./crd-registry";
import type { ResourceDef } from "./resources";
import { PATCH_CONTENT_TYPES } from "./patch";

type Json = Record<string, unknown>;

function gvPath(group: string, version: string): string {
  return group ? `apis/${group}/${version}` : `api/${version}`;
}

const queryParam = (name: string, type = "string"): Json => ({ name, in: "query", schema: { type, uniqueItems: true } });

/** The component a resource's operations refer to: its CRD schema, or the generated built-in one. */
function componentOf(d: ResourceDef): string | undefined {
  if (d.schema) return schemaName(d);
  return builtinKindSchemas(d)?.name;
}

function schemaName(d: ResourceDef): string {
  const reversed = d.group ? d.group.split(".").reverse().join(".") : "io.k8s.api.core";
  return `${reversed}.${d.version}.${d.kind}`;
}

function bodySchema(d: ResourceDef): Json {
  const name = componentOf(d);
  return name ? { $ref: `#/components/schemas/${name}` } : { type: "object" };
}

function operation(d: ResourceDef, action: string, method: string, extra: Json = {}): Json {
  const gvk = { group: d.group, version: d.version, kind: d.kind };
  return {
    operationId: `${method}${d.kind}`,
    tags: [d.group || "core"],
    "x-kubernetes-action": action,
    "x-kubernetes-group-version-kind": gvk,
    responses: { "200": { description: "OK", content: { "application/json": { schema: bodySchema(d) } } } },
    ...extra,
  };
}

function writeBody(d: ResourceDef): Json {
  return { content: { "application/json": { schema: bodySchema(d) } }, required: true };
}

function pathsFor(d: ResourceDef): Record<string, Json> {
  const base = `/${gvPath(d.group, d.version)}${d.namespaced ? "/namespaces/{namespace}" : ""}/${d.plural}`;
  const common = [
    ...(d.namespaced ? [{ name: "namespace", in: "path", required: true, schema: { type: "string", uniqueItems: true } }] : []),
    queryParam("pretty"),
  ];
  const writeParams = [queryParam("dryRun"), queryParam("fieldManager"), queryParam("fieldValidation")];
  const patchTypes = [PATCH_CONTENT_TYPES.json, PATCH_CONTENT_TYPES.merge, ...(d.strategicMerge ? [PATCH_CONTENT_TYPES.strategic] : []), PATCH_CONTENT_TYPES.apply];
  const patchBody = { content: Object.fromEntries(patchTypes.map((t) => [t, { schema: { type: "object" } }])), required: true };
  const listParams = ["allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit", "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds", "watch"].map((n) => queryParam(n));
  const named = [{ name: "name", in: "path", required: true, schema: { type: "string", uniqueItems: true } }, ...common];
  const paths: Record<string, Json> = {
    [base]: {
      get: operation(d, "list", "list", { parameters: listParams }),
      post: operation(d, "post", "create", { parameters: writeParams, requestBody: writeBody(d) }),
      delete: operation(d, "deletecollection", "deleteCollection", { parameters: listParams }),
      parameters: common,
    },
    [`${base}/{name}`]: {
      get: operation(d, "get", "read"),
      put: operation(d, "put", "replace", { parameters: writeParams, requestBody: writeBody(d) }),
      patch: operation(d, "patch", "patch", { parameters: [...writeParams, queryParam("force", "boolean")], requestBody: patchBody }),
      delete: operation(d, "delete", "delete", { parameters: [queryParam("dryRun"), queryParam("gracePeriodSeconds", "integer"), queryParam("propagationPolicy")] }),
      parameters: named,
    },
  };
  if (d.statusSubresource) {
    paths[`${base}/{name}/status`] = {
      get: operation(d, "get", "readStatus"),
      put: operation(d, "put", "replaceStatus", { parameters: writeParams, requestBody: writeBody(d) }),
      patch: operation(d, "patch", "patchStatus", { parameters: [...writeParams, queryParam("force", "boolean")], requestBody: patchBody }),
      parameters: named,
    };
  }
  return paths;
}

function buildGroupVersionDocument(defs: ResourceDef[]): Json {
  const paths: Record<string, Json> = {};
  const schemas: Record<string, Json> = {};
  for (const d of defs) {
    Object.assign(paths, pathsFor(d));
    if (d.schema) {
      const meta = objectMetaSchemas();
      const properties = { ...(d.schema.properties ?? {}) } as Record<string, unknown>;
      if (meta) {
        Object.assign(schemas, meta.schemas);
        properties["metadata"] = { allOf: [{ $ref: `#/components/schemas/${meta.name}` }], ...(meta.description ? { description: meta.description } : {}) };
      }
      schemas[schemaName(d)] = {
        ...d.schema,
        properties,
        "x-kubernetes-group-version-kind": [{ group: d.group, version: d.version, kind: d.kind }],
      };
    } else {
      const builtin = builtinKindSchemas(d);
      if (!builtin) continue;
      // Kinds of one group-version share types (ObjectMeta, PodTemplateSpec); a kind's own schema keeps its GVK.
      for (const [name, schema] of Object.entries(builtin.schemas)) {
        const seen = schemas[name];
        schemas[name] = seen && "x-kubernetes-group-version-kind" in seen ? seen : schema;
      }
    }
  }
  return {
    openapi: "3.0.0",
    info: { title: "Kubernetes", version: "v1.31.4" },
    paths,
    components: { schemas },
  };
}

/** A built group-version document: its JSON text (what is sent) and its hash (the index URL and the ETag). */
export interface OpenApiDocument {
  body: Buffer;
  hash: string;
}

interface CachedDocument extends OpenApiDocument {
  defs: ResourceDef[];
}

const documents = new WeakMap<ResourceRegistry, Map<string, CachedDocument>>();

/**
 * The group-version document, or undefined when nothing is served there. Rebuilt only when the served resources
 * of that group-version change (the registry makes new definitions when CRDs change).
 */
export function groupVersionDocument(registry: ResourceRegistry, group: string, version: string): OpenApiDocument | undefined {
  const defs = registry.all().filter((d) => d.group === group && d.version === version);
  if (defs.length === 0) return undefined;
  let cache = documents.get(registry);
  if (!cache) documents.set(registry, (cache = new Map()));
  const key = `${group}/${version}`;
  const cached = cache.get(key);
  if (cached && cached.defs.length === defs.length && cached.defs.every((d, i) => d === defs[i])) return cached;
  const body = Buffer.from(JSON.stringify(buildGroupVersionDocument(defs)));
  const built = { defs, body, hash: documentHash(body) };
  cache.set(key, built);
  return built;
}

export function documentHash(body: Buffer): string {
  return createHash("sha512").update(body).digest("hex").slice(0, 128).toUpperCase();
}

/** The `/openapi/v3` index: one entry per served group-version, each URL carrying its content hash. */
export function openApiIndex(registry: ResourceRegistry): Json {
  const paths: Record<string, Json> = {};
  const gvs = new Set(registry.all().map((d) => `${d.group}|${d.version}`));
  for (const gv of gvs) {
    const [group = "", version = ""] = gv.split("|");
    const doc = groupVersionDocument(registry, group, version);
    if (!doc) continue;
    const p = gvPath(group, version);
    paths[p] = { serverRelativeURL: `/openapi/v3/${p}?hash=${doc.hash}` };
  }
  return { paths };
}

export const OPENAPI_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

function protoString(field: number, value: string): Buffer {
  const bytes = Buffer.from(value, "utf8");
  return Buffer.concat([Buffer.from([(field << 3) | 2, bytes.length]), bytes]);
}

/**
 * A schema-less OpenAPI v2 document. kubectl before 1.27 validates `create -f` against /openapi/v2 (fetched as
 * gnostic protobuf) and skips kinds that have no definition; newer kubectl only reads it for apply's patch
 * metadata and falls back to its compiled-in types. So an empty v2 document keeps every kubectl working without
 * pretending to know built-in schemas.
 */
export function emptyOpenApiV2(protobuf: boolean, kubernetesVersion: string): { contentType: string; body: Buffer } {
  if (!protobuf) {
    const doc = { swagger: "2.0", info: { title: "Kubernetes", version: kubernetesVersion }, paths: {}, definitions: {} };
    return { contentType: "application/json", body: Buffer.from(JSON.stringify(doc)) };
  }
  // gnostic openapi_v2.Document: swagger = 1, info = 2 (Info: title = 1, version = 2), paths = 8.
  const info = Buffer.concat([protoString(1, "Kubernetes"), protoString(2, kubernetesVersion)]);
  const body = Buffer.concat([protoString(1, "2.0"), Buffer.from([(2 << 3) | 2, info.length]), info, Buffer.from([(8 << 3) | 2, 0])]);
  // kube-openapi answers the protobuf form as application/octet-stream (clients cannot parse the '@' media type).
  return { contentType: "application/octet-stream", body };
}

/**
 * Answers a group-version document as kube-openapi does: a `?hash=` that is not the current one redirects (301) to
 * the current URL; the current hash is immutable; without a hash the client must revalidate.
 * The ETag is the hash, and `If-None-Match` with it answers 304 without the body.
 */
export function sendOpenApiDocument(req: IncomingMessage, res: ServerResponse, url: URL, path: string, doc: OpenApiDocument): void {
  const asked = url.searchParams.get("hash");
  if (asked !== null && asked !== doc.hash) {
    res.writeHead(301, { Location: `${path}?hash=${doc.hash}`, "Cache-Control": "public, immutable", "Content-Length": 0 });
    res.end();
    return;
  }
  const etag = `"${doc.hash}"`;
  const headers: Record<string, string | number> = {
    "Content-Type": "application/json",
    ETag: etag,
    "Cache-Control": asked === null ? "no-cache, private" : "public, immutable",
  };
  if ((req.headers["if-none-match"] ?? "").split(",").some((t) => t.trim() === etag)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  res.writeHead(200, { ...headers, "Content-Length": doc.body.length });
  res.end(req.method === "HEAD" ? undefined : doc.body);
}
