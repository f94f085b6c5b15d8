import { defineConfig } from "tsup";

// Each example is a program of its own (`node dist/<app>.js`), so each is an ESM entry.
export default defineConfig({
  entry: {
    "keyvault-secret": "src/keyvault-secret.ts",
    "blob-storage": "src/blob-storage.ts",
    "sql-query": "src/sql-query.ts",
    demo: "src/demo.ts",
  },
  format: ["esm"],
  sourcemap: true,
  clean: true,
  target: "node22",
  // The demo uses the testbed from the workspace at run time; never bundle it into dist/.
  external: ["@podidentity/testbed"],
});
