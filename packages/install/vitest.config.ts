import { defineConfig, type Plugin } from "vitest/config";
import { sharedTestConfig } from "../../vitest.shared";

/** `import text from "x.yaml"` gives the file's text, as tsup's text loader does in the build (tsup.config.ts). */
const yamlAsText: Plugin = {
  name: "podidentity-yaml-as-text",
  transform(code, id) {
    return id.endsWith(".yaml") ? { code: `export default ${JSON.stringify(code)};`, map: null } : undefined;
  },
};

export default defineConfig({ plugins: [yamlAsText], test: sharedTestConfig("install") });
