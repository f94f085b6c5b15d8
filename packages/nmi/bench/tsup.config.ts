import { defineConfig } from "tsup";

// The benchmark's own build (bench/run.ts and the child processes it starts), kept out of dist.
export default defineConfig({
  entry: ["bench/run.ts", "bench/nmi-child.ts", "bench/floor-child.ts"],
  format: ["esm"],
  target: "node22",
  outDir: "node_modules/.bench",
  skipNodeModulesBundle: true,
  clean: true,
  silent: true,
});
