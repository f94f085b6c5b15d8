import type { JSONSchemaProps } from "../../src/index";

/**
 * The rules of a structural schema (Kubernetes docs, "Specifying a structural schema") that a hand-built schema
 * could break: a type on every node (except int-or-string), anyOf only in the int-or-string pattern, no
 * properties and additionalProperties together, items on arrays, and only type restrictions on root metadata.
 */
export function structuralViolations(schema: JSONSchemaProps, path = "", root = true): string[] {
  const out: string[] = [];
  const at = path === "" ? "(root)" : path;
  if (schema["x-kubernetes-int-or-string"]) {
    if (schema.type !== undefined) out.push(`${at}: int-or-string must not set type`);
    const anyOf = schema.anyOf ?? [];
    const ok =
      anyOf.length === 2 &&
      anyOf.every((s) => Object.keys(s).length === 1) &&
      anyOf.map((s) => s.type).join() === "integer,string";
    if (!ok) out.push(`${at}: int-or-string must use anyOf [{type: integer}, {type: string}]`);
    return out;
  }
  if (schema.type === undefined) out.push(`${at}: missing type`);
  if (schema.anyOf !== undefined) out.push(`${at}: anyOf outside int-or-string`);
  if (schema.properties !== undefined && schema.additionalProperties !== undefined) {
    out.push(`${at}: both properties and additionalProperties`);
  }
  if (schema.type === "array" && schema.items === undefined) out.push(`${at}: array without items`);
  if (schema["x-kubernetes-embedded-resource"] && schema.type !== "object") out.push(`${at}: embedded resource not an object`);
  for (const [key, child] of Object.entries(schema.properties ?? {})) {
    const childPath = path === "" ? key : `${path}.${key}`;
    if (root && key === "metadata" && Object.keys(child).some((k) => k !== "type")) {
      out.push(`${childPath}: root metadata may only declare its type`);
    }
    out.push(...structuralViolations(child, childPath, false));
  }
  if (schema.additionalProperties !== undefined) {
    out.push(...structuralViolations(schema.additionalProperties, `${path}.*`, false));
  }
  if (schema.items !== undefined) out.push(...structuralViolations(schema.items, `${path}[]`, false));
  return out;
}
