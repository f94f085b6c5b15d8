import { defineConfig } from "vitest/config";
import { sharedTestConfig } from "../../vitest.shared";

export default defineConfig({
  test: {
    ...sharedTestConfig("examples"),
    // The tests run the apps as real programs (node <app>.js); build them once, away from dist/.
    globalSetup: ["test/helpers/build-apps.ts"],
  },
});
