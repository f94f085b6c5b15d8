#!/usr/bin/env node
// Fails when a workspace package's `engines.node` promises less than its runtime dependencies need.
//
// For each package under packages/, walks its production dependency closure (dependencies and optional
// dependencies, resolved from where Node would resolve them) and compares the lowest Node version each package's
// own `engines.node` range admits. A package that declares `>=22` while commander needs 22.12 crashes on 22.11 at
// import; this check is what keeps the declared minimum true. Run by `pnpm run ci`.
import { readdirSync, readFileSync, realpathSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import semver from "semver";

const root = join(import.meta.dirname, "..");

function readManifest(dir) {
  return JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
}

/** The directory of `name` as resolved from `fromDir`, or undefined when it is not installed (an optional dep). */
function resolvePackageDir(name, fromDir) {
  const require = createRequire(join(fromDir, "package.json"));
  for (const base of require.resolve.paths(name) ?? []) {
    try {
      const dir = join(base, name);
      readFileSync(join(dir, "package.json"));
      return realpathSync(dir);
    } catch {
      // not in this node_modules; try the next one up
    }
  }
  return undefined;
}

/** The lowest Node version an engines range admits; undefined when the package states none. */
function minimumOf(range) {
  if (typeof range !== "string" || range.trim() === "" || range.trim() === "*") return undefined;
  const min = semver.minVersion(range);
  return min ?? undefined;
}

/** The strictest minimum in the production closure of the package at `dir`, with the dependency that sets it. */
function closureMinimum(dir) {
  const seen = new Set();
  let strictest = { version: semver.parse("0.0.0"), by: "(none)" };
  const stack = [dir];
  while (stack.length > 0) {
    const current = stack.pop();
    if (seen.has(current)) continue;
    seen.add(current);
    const manifest = readManifest(current);
    if (current !== dir) {
      const min = minimumOf(manifest.engines?.node);
      if (min && semver.gt(min, strictest.version)) strictest = { version: min, by: `${manifest.name}@${manifest.version} (engines.node "${manifest.engines.node}")` };
    }
    const deps = { ...manifest.dependencies, ...manifest.optionalDependencies };
    for (const name of Object.keys(deps)) {
      const depDir = resolvePackageDir(name, current);
      if (depDir !== undefined) stack.push(depDir);
    }
  }
  return strictest;
}

const problems = [];
const packagesDir = join(root, "packages");
const dirs = [root, ...readdirSync(packagesDir).map((d) => join(packagesDir, d))];
for (const dir of dirs) {
  let manifest;
  try {
    manifest = readManifest(dir);
  } catch {
    continue;
  }
  const declared = manifest.engines?.node;
  const declaredMin = minimumOf(declared);
  if (declaredMin === undefined) {
    problems.push(`${manifest.name}: no engines.node`);
    continue;
  }
  // The root is private and holds only tools: compare its devDependencies too (they run in `make test`).
  const needed = dir === root ? devToolsMinimum(dir, manifest) : closureMinimum(dir);
  if (semver.lt(declaredMin, needed.version)) {
    problems.push(`${manifest.name}: engines.node "${declared}" admits ${declaredMin}, but ${needed.by} needs ${needed.version}`);
  }
}

function devToolsMinimum(dir, manifest) {
  let strictest = { version: semver.parse("0.0.0"), by: "(none)" };
  for (const name of Object.keys(manifest.devDependencies ?? {})) {
    const depDir = resolvePackageDir(name, dir);
    if (depDir === undefined) continue;
    const dep = readManifest(depDir);
    const min = minimumOf(dep.engines?.node);
    if (min && semver.gt(min, strictest.version)) strictest = { version: min, by: `${dep.name}@${dep.version} (engines.node "${dep.engines.node}")` };
  }
  return strictest;
}

if (problems.length > 0) {
  console.error(`engines check failed (${problems.length}):\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.log(`engines check: ${dirs.length} manifests declare at least what their runtime dependencies need`);
