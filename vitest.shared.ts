// Settings every package's vitest.config.ts shares: each run writes a JSON report to
// .reports/<package>.json, from which .ci/run prints its "N passed, N failed" line.
import { resolve } from "node:path";
import type { ViteUserConfig } from "vitest/config";

export function sharedTestConfig(pkg: string): NonNullable<ViteUserConfig["test"]> {
  return {
    include: ["test/**/*.test.ts"],
    reporters: ["default", "json"],
    outputFile: { json: resolve(import.meta.dirname, ".reports", `${pkg}.json`) },
    testTimeout: 20_000,
    hookTimeout: 30_000,
  };
}
