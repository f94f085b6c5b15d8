import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseAllDocuments } from "yaml";

const FIXTURES = resolve(import.meta.dirname, "../fixtures");

/** Every document of a fixture file (YAML, or JSON, which is YAML), as plain objects; parse errors throw. */
export function loadFixture(file: string): Record<string, unknown>[] {
  const text = readFileSync(resolve(FIXTURES, file), "utf8");
  return parseAllDocuments(text).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join("; ")}`);
    return doc.toJS() as Record<string, unknown>;
  });
}

/** The one document of `kind` named `name` in a fixture file. */
export function fixtureObject(file: string, kind: string, name: string): Record<string, unknown> {
  const found = loadFixture(file).find(
    (doc) => doc.kind === kind && (doc.metadata as { name?: string } | undefined)?.name === name,
  );
  if (found === undefined) throw new Error(`${file} has no ${kind} ${name}`);
  return found;
}
