/**
 * The parts of a CRD's structural schema (apiextensions.k8s.io/v1 JSONSchemaProps) that the API server acts on:
 * pruning of undeclared fields, `default`, dropping nulls of non-nullable fields, and validation of type,
 * required, enum and bounds. Kubernetes does these in this order before storing a custom resource.
 */
import type { FieldError } from "./status-errors";

export interface JsonSchemaProps {
  type?: string;
  format?: string;
  description?: string;
  properties?: Record<string, JsonSchemaProps>;
  additionalProperties?: JsonSchemaProps | boolean;
  items?: JsonSchemaProps;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  nullable?: boolean;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  pattern?: string;
  "x-kubernetes-preserve-unknown-fields"?: boolean;
  "x-kubernetes-embedded-resource"?: boolean;
  "x-kubernetes-int-or-string"?: boolean;
  [key: string]: unknown;
}

/** ObjectMeta fields kept at the root of a custom resource; anything else under metadata is pruned. */
const OBJECT_META_FIELDS = new Set([
  "name",
  "generateName",
  "namespace",
  "selfLink",
  "uid",
  "resourceVersion",
  "generation",
  "creationTimestamp",
  "deletionTimestamp",
  "deletionGracePeriodSeconds",
  "labels",
  "annotations",
  "ownerReferences",
  "finalizers",
  "managedFields",
]);

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/** Removes fields the schema does not declare; returns their paths (for Warn/Strict field validation). */
export function pruneObject(obj: Json, schema: JsonSchemaProps): string[] {
  const unknown: string[] = [];
  for (const key of Object.keys(obj)) {
    if (key === "apiVersion" || key === "kind") continue;
    if (key === "metadata") {
      pruneObjectMeta(obj[key], key, unknown);
      continue;
    }
    const propSchema = schema.properties?.[key];
    if (propSchema) {
      obj[key] = pruneValue(obj[key], propSchema, key, unknown);
    } else if (!schema["x-kubernetes-preserve-unknown-fields"]) {
      delete obj[key];
      unknown.push(key);
    }
  }
  return unknown;
}

/** Keeps only ObjectMeta's fields in a (root or embedded) object's metadata. */
function pruneObjectMeta(meta: unknown, path: string, unknown: string[]): void {
  if (!isObject(meta)) return;
  for (const key of Object.keys(meta)) {
    if (!OBJECT_META_FIELDS.has(key)) {
      delete meta[key];
      unknown.push(`${path}.${key}`);
    }
  }
}

function pruneValue(value: unknown, schema: JsonSchemaProps, path: string, unknown: string[]): unknown {
  if (Array.isArray(value)) {
    if (schema.items) return value.map((v, i) => pruneValue(v, schema.items as JsonSchemaProps, `${path}[${i}]`, unknown));
    return value;
  }
  if (!isObject(value)) return value;
  const preserve = schema["x-kubernetes-preserve-unknown-fields"] === true;
  const embedded = schema["x-kubernetes-embedded-resource"] === true;
  for (const key of Object.keys(value)) {
    const p = join(path, key);
    const declared = schema.properties?.[key];
    // As kube-apiserver's pruning: an embedded resource's apiVersion, kind and metadata are implicitly specified,
    // whatever its schema declares for them, and its metadata keeps ObjectMeta's fields, as at the root.
    if (embedded && (key === "apiVersion" || key === "kind")) {
      continue;
    } else if (embedded && key === "metadata") {
      pruneObjectMeta(value[key], p, unknown);
    } else if (declared) {
      value[key] = pruneValue(value[key], declared, p, unknown);
    } else if (isObject(schema.additionalProperties)) {
      value[key] = pruneValue(value[key], schema.additionalProperties, p, unknown);
    } else if (schema.additionalProperties === true || preserve) {
      continue;
    } else {
      delete value[key];
      unknown.push(p);
    }
  }
  return value;
}

/** Applies `default` for absent properties and drops nulls where the schema is not nullable. */
export function applyDefaults(value: unknown, schema: JsonSchemaProps): void {
  if (Array.isArray(value)) {
    if (schema.items) for (const v of value) applyDefaults(v, schema.items);
    return;
  }
  if (!isObject(value)) return;
  for (const [key, prop] of Object.entries(schema.properties ?? {})) {
    if (value[key] === null && !prop.nullable && prop.default === undefined) {
      delete value[key];
    } else if ((value[key] === undefined || value[key] === null) && prop.default !== undefined) {
      value[key] = structuredClone(prop.default);
    }
    if (value[key] !== undefined) applyDefaults(value[key], prop);
  }
  if (isObject(schema.additionalProperties)) {
    for (const key of Object.keys(value)) {
      if (!schema.properties?.[key]) applyDefaults(value[key], schema.additionalProperties);
    }
  }
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

function typeMatches(v: unknown, schema: JsonSchemaProps): boolean {
  if (schema["x-kubernetes-int-or-string"]) return typeof v === "string" || (typeof v === "number" && Number.isInteger(v));
  switch (schema.type) {
    case undefined:
      return true;
    case "object":
      return isObject(v);
    case "array":
      return Array.isArray(v);
    case "string":
      return typeof v === "string";
    case "integer":
      return typeof v === "number" && Number.isInteger(v);
    case "number":
      return typeof v === "number";
    case "boolean":
      return typeof v === "boolean";
    default:
      return true;
  }
}

/** Validates a value against the schema; returns field errors in apimachinery's format. */
export function validateValue(value: unknown, schema: JsonSchemaProps, path: string, errors: FieldError[]): void {
  if (value === null) {
    if (!schema.nullable) {
      errors.push({ type: "TypeInvalid", field: path, value: "null", detail: `${path} in body must be of type ${schema.type ?? "object"}: "null"` });
    }
    return;
  }
  if (!typeMatches(value, schema)) {
    const expected = schema["x-kubernetes-int-or-string"] ? "integer,string" : (schema.type as string);
    errors.push({ type: "TypeInvalid", field: path, value: typeName(value), detail: `${path} in body must be of type ${expected}: "${typeName(value)}"` });
    return;
  }
  if (schema.enum && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) {
    errors.push({ type: "NotSupported", field: path, value, supported: schema.enum.map((e) => String(e)) });
  }
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum) {
      errors.push({ type: "Invalid", field: path, value, detail: `${path} in body should be greater than or equal to ${schema.minimum}` });
    }
    if (schema.maximum !== undefined && value > schema.maximum) {
      errors.push({ type: "Invalid", field: path, value, detail: `${path} in body should be less than or equal to ${schema.maximum}` });
    }
  }
  if (typeof value === "string") {
    if (schema.minLength !== undefined && value.length < schema.minLength) {
      errors.push({ type: "Invalid", field: path, value, detail: `${path} in body should be at least ${schema.minLength} chars long` });
    }
    if (schema.maxLength !== undefined && value.length > schema.maxLength) {
      errors.push({ type: "TooLong", field: path, value, detail: `may not be more than ${schema.maxLength} bytes` });
    }
    if (schema.pattern !== undefined && !safeRegExp(schema.pattern)?.test(value)) {
      errors.push({ type: "Invalid", field: path, value, detail: `${path} in body should match '${schema.pattern}'` });
    }
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) {
      errors.push({ type: "Invalid", field: path, value, detail: `${path} in body should have at least ${schema.minItems} items` });
    }
    if (schema.maxItems !== undefined && value.length > schema.maxItems) {
      errors.push({ type: "TooLong", field: path, value, detail: `must have at most ${schema.maxItems} items` });
    }
    if (schema.items) value.forEach((v, i) => validateValue(v, schema.items as JsonSchemaProps, `${path}[${i}]`, errors));
  }
  if (isObject(value)) {
    for (const req of schema.required ?? []) {
      if (value[req] === undefined) errors.push({ type: "Required", field: join(path, req) });
    }
    for (const [key, v] of Object.entries(value)) {
      const prop = schema.properties?.[key] ?? (isObject(schema.additionalProperties) ? schema.additionalProperties : undefined);
      if (prop && !(path === "" && (key === "metadata" || key === "apiVersion" || key === "kind"))) {
        validateValue(v, prop, join(path, key), errors);
      }
    }
  }
}

function safeRegExp(pattern: string): RegExp | undefined {
  try {
    return new RegExp(pattern, "u");
  } catch {
    // An invalid pattern is rejected when the CRD is created; treat a leftover one as "no constraint".
    return undefined;
  }
}

/** Checks that a CRD version schema is structural enough to serve: an object at the root, types everywhere. */
export function structuralErrors(schema: unknown, path: string): FieldError[] {
  const errors: FieldError[] = [];
  const visit = (s: unknown, p: string, root: boolean) => {
    if (!isObject(s)) {
      errors.push({ type: "Required", field: p, detail: "must be a schema object" });
      return;
    }
    const props = s as JsonSchemaProps;
    const preserve = props["x-kubernetes-preserve-unknown-fields"] === true || props["x-kubernetes-int-or-string"] === true;
    if (root && props.type !== "object") errors.push({ type: "Invalid", field: `${p}.type`, value: props.type ?? "", detail: "must be object at the root" });
    if (!props.type && !preserve) errors.push({ type: "Required", field: `${p}.type`, detail: "must not be empty for specified object fields" });
    if (typeof props.pattern === "string" && safeRegExp(props.pattern) === undefined) {
      errors.push({ type: "Invalid", field: `${p}.pattern`, value: props.pattern, detail: "must be a valid regular expression" });
    }
    for (const [k, v] of Object.entries(props.properties ?? {})) visit(v, `${p}.properties[${k}]`, false);
    if (props.items !== undefined) visit(props.items, `${p}.items`, false);
    if (isObject(props.additionalProperties)) visit(props.additionalProperties, `${p}.additionalProperties`, false);
  };
  visit(schema, path, true);
  return errors;
}
