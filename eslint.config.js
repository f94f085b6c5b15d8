// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["**/dist/**", "**/node_modules/**", "**/.turbo/**", ".tooling/**", "**/coverage/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "no-console": "error",
    },
  },
  {
    // Deployables' entry points, CLIs, tests and benchmarks may print; libraries never do.
    files: ["**/src/main.ts", "**/src/cli.ts", "**/src/cli/**", "**/test/**", "**/bench/**", "scripts/**"],
    rules: { "no-console": "off" },
  },
);
