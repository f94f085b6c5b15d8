import { readFileSync } from "node:fs";

/**
 * This package's version, read from its package.json: the nearest one above this module named
 * @podidentity/sdk (dist/cli.js in an install, src/… in the repository). "unknown" if none is found.
 */
export function packageVersion(from: string = import.meta.url): string {
  for (let dir = new URL(".", from); ; dir = new URL("..", dir)) {
    try {
      const pkg = JSON.parse(readFileSync(new URL("package.json", dir), "utf8")) as { name?: unknown; version?: unknown };
      if (pkg.name === "@podidentity/sdk" && typeof pkg.version === "string") return pkg.version;
    } catch {
      // no package.json at this level: look further up
    }
    if (new URL("..", dir).href === dir.href) return "unknown";
  }
}
