// Config of the inner run that e2e.test.ts starts inside a private network namespace: one cluster at a time
// (each file builds its own), so a 2-core machine is not oversubscribed.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: { include: ["test/**/*.netns.ts"], testTimeout: 60_000, hookTimeout: 60_000, fileParallelism: false },
});
