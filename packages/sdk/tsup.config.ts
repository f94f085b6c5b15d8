import { defineConfig } from "tsup";
import type { Options } from "tsup";
import { libraryBuild } from "../../tsup.shared";

/**
 * src/node-version-check.ts is built as its own file and imported, unbundled, first by dist/index.{js,cjs} and
 * dist/cli.js. Bundled inline it would run after the dependencies: esbuild hoists external imports above the
 * bundle's code in ESM, and a dependency too new for the running Node crashes while loading, before the check.
 */
const versionCheckFirst: NonNullable<Options["esbuildPlugins"]>[number] = {
  name: "node-version-check-first",
  setup(build) {
    const extension = build.initialOptions.format === "cjs" ? ".cjs" : ".js";
    build.onResolve({ filter: /^\.\/node-version-check$/ }, () => ({ path: `./node-version-check${extension}`, external: true }));
  },
};

export default defineConfig(
  libraryBuild({ name: "cli", entry: "src/cli.ts" }).map((options): Options => {
    const entry = options.entry as Record<string, string>;
    // The library build (ESM + CJS) also emits the check itself.
    const withCheck = "index" in entry ? { ...entry, "node-version-check": "src/node-version-check.ts" } : entry;
    return { ...options, entry: withCheck, esbuildPlugins: [...(options.esbuildPlugins ?? []), versionCheckFirst] };
  }),
);
