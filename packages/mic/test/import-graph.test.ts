import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), "../src");

/** Every module under src/ and the src/ modules it imports (relative specifiers, `import type` included). */
function importGraph(): Map<string, string[]> {
  const files = (readdirSync(SRC, { recursive: true }) as string[]).filter((f) => f.endsWith(".ts")).map((f) => f.split("\\").join("/"));
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const text = readFileSync(join(SRC, file), "utf8");
    const deps = new Set<string>();
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)) {
      const target = relative(SRC, resolve(SRC, dirname(file), m[1]!)).split("\\").join("/");
      deps.add(files.includes(`${target}.ts`) ? `${target}.ts` : `${target}/index.ts`);
    }
    graph.set(file, [...deps]);
  }
  return graph;
}

/** The cycles of a directed graph (each as the path that closes it), by depth-first search. */
function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (node: string): void => {
    state.set(node, "open");
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === "open") found.push([...path.slice(path.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    path.pop();
    state.set(node, "done");
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return found;
}

const folderOf = (file: string): string => (file.includes("/") ? file.slice(0, file.indexOf("/")) : ".");

describe("MIC's import graph is its data flow (src/README.md)", () => {
  const graph = importGraph();

  it("reads every part", () => {
    expect([...new Set([...graph.keys()].map(folderOf))].sort()).toEqual([".", "arm", "assignment", "reconcile", "runtime", "state"]);
  });

  it("has no import cycle between modules", () => {
    expect(cycles(graph)).toEqual([]);
  });

  it("has no cycle between its parts (folders), and state/ and assignment/ never reach back into reconcile/", () => {
    const folders = new Map<string, Set<string>>();
    for (const [file, deps] of graph) {
      const from = folderOf(file);
      if (from === ".") continue; // mic.ts, main.ts, index.ts put the parts together; errors.ts and clock.ts are leaves
      for (const dep of deps) {
        const to = folderOf(dep);
        if (to === "." || to === from) continue;
        folders.set(from, (folders.get(from) ?? new Set()).add(to));
      }
    }
    const folderGraph = new Map([...folders].map(([k, v]) => [k, [...v]]));
    expect(cycles(folderGraph)).toEqual([]);
    expect(folderGraph.get("state") ?? []).not.toContain("reconcile");
    expect(folderGraph.get("assignment") ?? []).not.toContain("reconcile");
    expect(folderGraph.get("arm") ?? []).toEqual([]);
  });

  it("the write-ahead \"added by MIC\" record is one module planner and reconciler both import, not a callback wired in mic.ts", () => {
    expect(graph.get("assignment/assignment-planner.ts")).toContain("assignment/added-by-record.ts");
    expect(graph.get("reconcile/assigned-identity-reconciler.ts")).toContain("assignment/added-by-record.ts");
    expect(readFileSync(join(SRC, "mic.ts"), "utf8")).not.toMatch(/recordAdding|engine: \(\) =>/);
  });

  it("the leaves (errors.ts, clock.ts) import no part of MIC", () => {
    expect(graph.get("errors.ts")).toEqual([]);
    expect(graph.get("clock.ts")).toEqual([]);
  });
});
