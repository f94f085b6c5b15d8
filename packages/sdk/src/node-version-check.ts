/**
 * Loaded before anything else in this package (dist/index.js, dist/index.cjs and dist/cli.js import it first,
 * as a separate file, so it runs before any dependency is evaluated): below the floor, a dependency would crash
 * while loading with an unreadable TypeError. Keep it free of imports and of syntax newer than Node 12.
 */

/** The oldest Node.js this package and its dependency closure run on; equals package.json `engines.node`. */
export const MINIMUM_NODE_VERSION = "22.12.0";

/** The readable error for a Node.js older than the floor, or undefined when `version` is new enough. */
export function nodeVersionProblem(version: string): Error | undefined {
  const have = version.replace(/^v/, "").split(".").map(Number);
  const need = MINIMUM_NODE_VERSION.split(".").map(Number);
  for (let i = 0; i < need.length; i++) {
    const a = have[i] ?? 0;
    const b = need[i] ?? 0;
    if (a > b) return undefined;
    if (a < b) {
      return Object.assign(
        new Error(
          `@podidentity/sdk needs Node.js >= ${MINIMUM_NODE_VERSION} (package.json "engines"); this is Node.js ${version.replace(/^v/, "")}. ` +
            "Upgrade Node.js (24 LTS recommended) or pin an older release of the package.",
        ),
        { code: "ERR_PODIDENTITY_NODE_VERSION" },
      );
    }
  }
  return undefined;
}

const problem = nodeVersionProblem(process.versions.node);
if (problem !== undefined) throw problem;
