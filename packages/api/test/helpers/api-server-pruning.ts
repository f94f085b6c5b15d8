import type { JSONSchemaProps } from "../../src/index";

/**
 * What the Kubernetes API server does to a custom resource against a structural schema, reduced to what our
 * tests need: prune undeclared fields, drop nulls where not nullable, and reject values of the wrong type
 * (the server answers 422 for those). `metadata` of the root and of embedded resources is ObjectMeta, which
 * the server handles itself, so it is kept whole.
 */
export interface PruneResult {
  readonly value: unknown;
  readonly errors: string[];
}

function typeOk(schema: JSONSchemaProps, value: unknown): boolean {
  if (schema["x-kubernetes-int-or-string"]) return typeof value === "string" || Number.isInteger(value);
  switch (schema.type) {
    case "string":
      return typeof value === "string";
    case "integer":
      return Number.isInteger(value);
    case "number":
      return typeof value === "number";
    case "boolean":
      return typeof value === "boolean";
    case "array":
      return Array.isArray(value);
    case "object":
      return typeof value === "object" && value !== null && !Array.isArray(value);
    default:
      return true;
  }
}

function prune(schema: JSONSchemaProps, value: unknown, path: string, errors: string[], resource: boolean): unknown {
  if (!typeOk(schema, value)) {
    errors.push(`${path}: expected ${schema.type ?? "integer or string"}, got ${JSON.stringify(value)}`);
    return value;
  }
  if (Array.isArray(value)) {
    const items = schema.items;
    return items === undefined ? value : value.map((item, i) => prune(items, item, `${path}[${i}]`, errors, false));
  }
  if (typeof value !== "object" || value === null) return value;
  if (schema["x-kubernetes-preserve-unknown-fields"]) return value;
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    if (resource && key === "metadata") {
      out[key] = child;
      continue;
    }
    const childSchema = schema.properties?.[key] ?? schema.additionalProperties;
    if (childSchema === undefined) continue; // pruned
    if (child === null) {
      if (childSchema.nullable) out[key] = null;
      continue;
    }
    const embedded = childSchema["x-kubernetes-embedded-resource"] === true;
    out[key] = prune(childSchema, child, path === "" ? key : `${path}.${key}`, errors, embedded);
  }
  return out;
}

export function pruneLikeApiServer(schema: JSONSchemaProps, object: unknown): PruneResult {
  const errors: string[] = [];
  const value = prune(schema, object, "", errors, true);
  return { value, errors };
}
