/**
 * OpenAPI v3 documents (`/openapi/v3` and one per group-version) for what is served. kubectl reads them to
 * decide how to validate and patch: a PATCH operation tagged with the resource's group-version-kind and a
 * `fieldValidation` parameter makes kubectl use server-side field validation (otherwise `create -f` needs the
 * full v2 schema); offering `application/strategic-merge-patch+json` only for built-ins makes `apply` compute a
 * merge patch for custom resources. Custom resources get their CRD schema as a component, so `kubectl explain`
 * and client-side tools see declared fields. Built-in kinds get no component schema: kubectl then falls back to
 * its compiled-in types for strategic merge patch metadata, which is exact.
 */
import { createHash } from "node:crypto";
import type { ResourceRegistry } from "./crd-registry";
import type { ResourceDef } from "./resources";
import { PATCH_CONTENT_TYPES } from "./patch";

type Json = Record<string, unknown>;

function gvPath(group: string, version: string): string {
  return group ? `apis/${group}/${version}` : `api/${version}`;
}

const queryParam = (name: string, type = "string"): Json => ({ name, in: "query", schema: { type, uniqueItems: true } });

function schemaName(d: ResourceDef): string {
  const reversed = d.group ? d.group.split(".").reverse().join(".") : "io.k8s.api.core";
  return `${reversed}.${d.version}.${d.kind}`;
}

function operation(d: ResourceDef, action: string, method: string, extra: Json = {}): Json {
  const gvk = { group: d.group, version: d.version, kind: d.kind };
  return {
    operationId: `${method}${d.kind}`,
    tags: [d.group || "core"],
    "x-kubernetes-action": action,
    "x-kubernetes-group-version-kind": gvk,
    responses: { "200": { description: "OK", content: { "application/json": { schema: d.schema ? { $ref: `#/components/schemas/${schemaName(d)}` } : { type: "object" } } } } },
    ...extra,
  };
}

function writeBody(d: ResourceDef): Json {
  return { content: { "application/json": { schema: d.schema ? { $ref: `#/components/schemas/${schemaName(d)}` } : { type: "object" } } }, required: true };
}

function pathsFor(d: ResourceDef): Record<string, Json> {
  const base = `/${gvPath(d.group, d.version)}${d.namespaced ? "/namespaces/{namespace}" : ""}/${d.plural}`;
  const common = [
    ...(d.namespaced ? [{ name: "namespace", in: "path", required: true, schema: { type: "string", uniqueItems: true } }] : []),
    queryParam("pretty"),
  ];
  const writeParams = [queryParam("dryRun"), queryParam("fieldManager"), queryParam("fieldValidation")];
  const patchTypes = [PATCH_CONTENT_TYPES.json, PATCH_CONTENT_TYPES.merge, ...(d.strategicMerge ? [PATCH_CONTENT_TYPES.strategic] : [])];
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

/** The group-version document, or undefined when nothing is served there. */
export function groupVersionDocument(registry: ResourceRegistry, group: string, version: string): Json | undefined {
  const defs = registry.all().filter((d) => d.group === group && d.version === version);
  if (defs.length === 0) return undefined;
  const paths: Record<string, Json> = {};
  const schemas: Record<string, Json> = {};
  for (const d of defs) {
    Object.assign(paths, pathsFor(d));
    if (d.schema) {
      schemas[schemaName(d)] = {
        ...d.schema,
        "x-kubernetes-group-version-kind": [{ group: d.group, version: d.version, kind: d.kind }],
      };
    }
  }
  return {
    openapi: "3.0.0",
    info: { title: "Kubernetes", version: "v1.31.4" },
    paths,
    components: { schemas },
  };
}

export function documentHash(doc: Json): string {
  return createHash("sha512").update(JSON.stringify(doc)).digest("hex").slice(0, 128).toUpperCase();
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
    paths[p] = { serverRelativeURL: `/openapi/v3/${p}?hash=${documentHash(doc)}` };
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
