import { defineConfig } from "vitest/config";
import { sharedTestConfig } from "../../vitest.shared";

// test/e2e.test.ts re-runs test/*.netns.ts inside a private network namespace (test/inner.vitest.config.ts);
// test/demo.test.ts runs the built demo, which enters one by itself. One at a time: a cluster wants both cores.
export default defineConfig({
  test: { ...sharedTestConfig("e2e"), testTimeout: 400_000, hookTimeout: 60_000, globalSetup: ["test/helpers/build-demo.ts"], fileParallelism: false },
});
