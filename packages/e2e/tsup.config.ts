import { defineConfig } from "tsup";

// The demo is a program (`node dist/demo.js`); it re-runs itself inside a private network namespace.
export default defineConfig({
  entry: { demo: "src/demo.ts" },
  format: ["esm"],
  sourcemap: true,
  clean: true,
  target: "node22",
  // Workspace packages are used from their own dist/ at run time, never bundled.
  external: [/^@podidentity\//],
});
