// Config of the inner run that topology.test.ts starts inside a private network namespace.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: { include: ["test/netns/**/*.netns.ts"], testTimeout: 20_000, hookTimeout: 30_000, fileParallelism: false },
});
