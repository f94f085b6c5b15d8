/**
 * What kube-apiserver's typed decoder does to a built-in object before any validation: wrongly typed fields fail
 * the decode (400 "… cannot be handled as a Pod: json: cannot unmarshal …"), undeclared fields are dropped with a
 * `Warning` (or refused under `fieldValidation=Strict`), and enum and required-field violations become 422s.
 *
 * The schemas are not written here: types, enums and required fields come from kubernetes-models' generated
 * validators (`kubernetes-models/_schemas/*`, the OpenAPI of current Kubernetes compiled with ajv; they allow
 * undeclared fields), and the set of declared fields — what the decoder keeps — from @kubernetes/client-node's
 * generated models (`attributeTypeMap`, also generated from the OpenAPI). Kinds not listed here (CRDs, custom
 * resources) are left to their own rules in object-rules.ts.
 */
import * as clientNode from "@kubernetes/client-node";
import { validate as validateNode } from "kubernetes-models/_schemas/IoK8sApiCoreV1Node";
import { validate as validateNamespace } from "kubernetes-models/_schemas/IoK8sApiCoreV1Namespace";
import { validate as validatePod } from "kubernetes-models/_schemas/IoK8sApiCoreV1Pod";
import { validate as validateEvent } from "kubernetes-models/_schemas/IoK8sApiCoreV1Event";
import { validate as validateConfigMap } from "kubernetes-models/_schemas/IoK8sApiCoreV1ConfigMap";
import { validate as validateSecret } from "kubernetes-models/_schemas/IoK8sApiCoreV1Secret";
import { validate as validateServiceAccount } from "kubernetes-models/_schemas/IoK8sApiCoreV1ServiceAccount";
import { validate as validateService } from "kubernetes-models/_schemas/IoK8sApiCoreV1Service";
import { validate as validateLease } from "kubernetes-models/_schemas/IoK8sApiCoordinationV1Lease";
import { validate as validateDeployment } from "kubernetes-models/_schemas/IoK8sApiAppsV1Deployment";
import { validate as validateDaemonSet } from "kubernetes-models/_schemas/IoK8sApiAppsV1DaemonSet";
import { validate as validateRole } from "kubernetes-models/_schemas/IoK8sApiRbacV1Role";
import { validate as validateRoleBinding } from "kubernetes-models/_schemas/IoK8sApiRbacV1RoleBinding";
import { validate as validateClusterRole } from "kubernetes-models/_schemas/IoK8sApiRbacV1ClusterRole";
import { validate as validateClusterRoleBinding } from "kubernetes-models/_schemas/IoK8sApiRbacV1ClusterRoleBinding";
import { validate as validatePdb } from "kubernetes-models/_schemas/IoK8sApiPolicyV1PodDisruptionBudget";
import { validate as validatePriorityClass } from "kubernetes-models/_schemas/IoK8sApiSchedulingV1PriorityClass";
import type { ResourceDef } from "./resources";
import type { FieldError } from "./status-errors";
import { badRequest } from "./status-errors";

type Json = Record<string, unknown>;

interface AjvError {
  instancePath: string;
  keyword: string;
  params: { type?: string; allowedValues?: unknown[]; missingProperty?: string; format?: string };
}

/** kubernetes-models' validators: ajv functions that keep their last errors on `.errors`. */
type Validator = ((data: unknown) => boolean) & { errors?: AjvError[] | null };

interface BuiltinSchema {
  validate: Validator;
  /** The client-node model named after the Go type (its attributeTypeMap lists the declared fields). */
  model: string;
}

const SCHEMAS: Record<string, BuiltinSchema> = {
  "/Pod": { validate: validatePod as Validator, model: "V1Pod" },
  "/Node": { validate: validateNode as Validator, model: "V1Node" },
  "/Namespace": { validate: validateNamespace as Validator, model: "V1Namespace" },
  "/Event": { validate: validateEvent as Validator, model: "CoreV1Event" },
  "/ConfigMap": { validate: validateConfigMap as Validator, model: "V1ConfigMap" },
  "/Secret": { validate: validateSecret as Validator, model: "V1Secret" },
  "/ServiceAccount": { validate: validateServiceAccount as Validator, model: "V1ServiceAccount" },
  "/Service": { validate: validateService as Validator, model: "V1Service" },
  "coordination.k8s.io/Lease": { validate: validateLease as Validator, model: "V1Lease" },
  "apps/Deployment": { validate: validateDeployment as Validator, model: "V1Deployment" },
  "apps/DaemonSet": { validate: validateDaemonSet as Validator, model: "V1DaemonSet" },
  "rbac.authorization.k8s.io/Role": { validate: validateRole as Validator, model: "V1Role" },
  "rbac.authorization.k8s.io/RoleBinding": { validate: validateRoleBinding as Validator, model: "V1RoleBinding" },
  "rbac.authorization.k8s.io/ClusterRole": { validate: validateClusterRole as Validator, model: "V1ClusterRole" },
  "rbac.authorization.k8s.io/ClusterRoleBinding": { validate: validateClusterRoleBinding as Validator, model: "V1ClusterRoleBinding" },
  "policy/PodDisruptionBudget": { validate: validatePdb as Validator, model: "V1PodDisruptionBudget" },
  "scheduling.k8s.io/PriorityClass": { validate: validatePriorityClass as Validator, model: "V1PriorityClass" },
};

interface Attribute {
  baseName: string;
  type: string;
  format: string;
}

const attributeCache = new Map<string, Attribute[] | undefined>();

/**
 * client-node's generated models by class name (`V1PodSpec` → its attribute map), read once per model: every
 * write of a built-in walks its object through these, so the lookup must not rebuild them each time.
 */
function attributesOf(model: string): Attribute[] | undefined {
  if (!attributeCache.has(model)) {
    const cls = (clientNode as unknown as Record<string, { getAttributeTypeMap?: () => Attribute[] } | undefined>)[model];
    attributeCache.set(model, cls?.getAttributeTypeMap?.());
  }
  return attributeCache.get(model);
}

const ARRAY = /^Array<(.+)>$/;
const MAP = /^\{ \[key: string\]: (.+); \}$/;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Whether this kind's schema is known here (built-in kinds the product, its manifests and tests write). */
export function hasBuiltinSchema(def: ResourceDef): boolean {
  return def.crdName === undefined && !def.schema && SCHEMAS[`${def.group}/${def.kind}`] !== undefined;
}

/**
 * Removes undeclared fields in place, as the decoder does; returns their paths in the form the real server's
 * warnings use (`spec.containers[0].bogus`).
 */
function pruneUndeclared(value: unknown, type: string, path: string, found: string[]): void {
  const array = ARRAY.exec(type);
  if (array) {
    if (Array.isArray(value)) value.forEach((v, i) => pruneUndeclared(v, array[1] as string, `${path}[${i}]`, found));
    return;
  }
  const map = MAP.exec(type);
  if (map) {
    if (isObject(value)) for (const [k, v] of Object.entries(value)) pruneUndeclared(v, map[1] as string, `${path}.${k}`, found);
    return;
  }
  const attrs = attributesOf(type);
  if (!attrs || !isObject(value)) return;
  for (const key of Object.keys(value)) {
    const attr = attrs.find((a) => a.baseName === key);
    const at = path ? `${path}.${key}` : key;
    if (!attr) {
      found.push(at);
      delete value[key];
    } else {
      pruneUndeclared(value[key], attr.type, at, found);
    }
  }
}

/** The Go type a client-node attribute stands for, as encoding/json names it in its errors. */
function goType(attr: Attribute): string {
  const t = attr.type;
  if (t === "string" || t === "Date") return t === "Date" ? "v1.Time" : "string";
  if (t === "boolean") return "bool";
  if (t === "number") return attr.format === "int32" || attr.format === "int64" ? attr.format : "float64";
  if (t === "IntOrString") return "intstr.IntOrString";
  const array = ARRAY.exec(t);
  if (array) return `[]${goType({ ...attr, type: array[1] as string })}`;
  const map = MAP.exec(t);
  if (map) return `map[string]${goType({ ...attr, type: map[1] as string })}`;
  return `v1.${goStruct(t)}`;
}

/** `V1PodSpec` → `PodSpec`, `CoreV1Event` → `Event`, `RbacV1Subject` → `Subject`. */
function goStruct(model: string): string {
  return model.replace(/^(?:[A-Z][a-z]+)*V\d+(?:(?:alpha|beta)\d+)?(?=[A-Z])/, "");
}

function jsonKind(v: unknown): string {
  if (Array.isArray(v)) return "array";
  if (v === null) return "null";
  if (typeof v === "boolean") return "bool";
  return typeof v === "object" ? "object" : typeof v;
}

/**
 * The encoding/json message for a value that does not decode: `json: cannot unmarshal string into Go struct field
 * DeploymentSpec.spec.replicas of type int32`. Walks the client-node models along the JSON pointer to name the
 * struct and field type.
 */
function unmarshalMessage(rootModel: string, root: Json, pointer: string): string {
  const segments = pointer.split("/").slice(1).map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
  let type = rootModel;
  let value: unknown = root;
  let struct = goStruct(rootModel);
  let attr: Attribute | undefined;
  const fieldPath: string[] = [];
  for (const seg of segments) {
    value = Array.isArray(value) ? value[Number(seg)] : isObject(value) ? value[seg] : undefined;
    const array = ARRAY.exec(type);
    const map = MAP.exec(type);
    if (array || map) {
      type = (array ?? map)?.[1] as string;
      if (map) fieldPath.push(seg);
      continue;
    }
    const model = type;
    attr = attributesOf(model)?.find((a) => a.baseName === seg);
    if (!attr) break;
    struct = goStruct(model);
    fieldPath.push(seg);
    type = attr.type;
  }
  const of = attr ? goType(attr) : "string";
  return `json: cannot unmarshal ${jsonKind(value)} into Go struct field ${struct}.${fieldPath.join(".")} of type ${of}`;
}

function fieldOf(pointer: string, extra?: string): string {
  let out = "";
  for (const seg of pointer.split("/").slice(1)) out += /^\d+$/.test(seg) ? `[${seg}]` : out ? `.${seg}` : seg;
  if (extra) out += out ? `.${extra}` : extra;
  return out;
}

export interface DecodeResult {
  /** Undeclared fields that were dropped (the caller warns or refuses by fieldValidation). */
  unknownFields: string[];
  /** Enum and required-field problems: 422 Invalid after defaulting, as validation reports them. */
  fieldErrors: FieldError[];
}

/**
 * Decodes a built-in object in place as kube-apiserver's typed decoder would. Throws 400 for a wrongly typed
 * field; returns the dropped undeclared fields and the schema-level field errors. Fields under `status` are
 * checked for types only: the real server's status validation is narrower than the OpenAPI's required lists.
 */
export function decodeBuiltin(def: ResourceDef, body: Json): DecodeResult {
  const schema = SCHEMAS[`${def.group}/${def.kind}`];
  if (!schema) return { unknownFields: [], fieldErrors: [] };
  const cannot = (what: string) => badRequest(`${def.kind} in version "${def.version}" cannot be handled as a ${def.kind}: ${what}`);
  const errors = schema.validate(body) ? [] : (schema.validate.errors ?? []);
  // encoding/json stops at the first value it cannot decode.
  const typeError = errors.find((e) => e.keyword === "type" || e.keyword === "format" || e.keyword === "anyOf" || e.keyword === "oneOf");
  if (typeError) {
    // resource.Quantity decodes itself: its parse error is the decode error (kube-apiserver answers 400 with it).
    if (errors.some((e) => e.instancePath === typeError.instancePath && e.keyword === "format" && e.params.format === "quantity")) {
      throw cannot(`quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'`);
    }
    throw cannot(unmarshalMessage(schema.model, body, typeError.instancePath));
  }
  const unknownFields: string[] = [];
  pruneUndeclared(body, schema.model, "", unknownFields);
  const fieldErrors: FieldError[] = [];
  for (const e of errors) {
    if (e.instancePath.startsWith("/status") || e.instancePath === "/apiVersion" || e.instancePath === "/kind") continue;
    if (e.keyword === "enum") {
      const value = e.instancePath.split("/").slice(1).reduce<unknown>((v, s) => (Array.isArray(v) ? v[Number(s)] : isObject(v) ? v[s] : undefined), body);
      fieldErrors.push({ type: "NotSupported", field: fieldOf(e.instancePath), value, supported: (e.params.allowedValues ?? []).map(String) });
    } else if (e.keyword === "required" && e.params.missingProperty !== "metadata") {
      fieldErrors.push({ type: "Required", field: fieldOf(e.instancePath, e.params.missingProperty) });
    }
  }
  return { unknownFields, fieldErrors };
}
