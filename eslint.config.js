// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["**/dist/**", "**/dist-test/**", "**/node_modules/**", "**/.turbo/**", ".tooling/**", "**/coverage/**"] },
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
  {
    // Tests never race the clock: an elapsed wall-clock time asserted in a test fails on a loaded machine. Assert the
    // mechanism instead (a counter, a metric, an event order) or run on an injected clock. Benchmarks measure time.
    files: ["**/test/**"],
    rules: {
      "no-restricted-syntax": [
        "error",
        ...["left", "right"].map((side) => ({
          selector: `CallExpression[callee.name='expect'] BinaryExpression[operator='-'][${side}.callee.object.name=/^(Date|performance)$/][${side}.callee.property.name='now']`,
          message: "No wall-clock bound inside expect(): assert the mechanism (a counter, metric or event) or use an injected clock.",
        })),
        {
          selector: "VariableDeclarator > BinaryExpression.init[operator='-'][left.callee.object.name=/^(Date|performance)$/][left.callee.property.name='now']",
          message: "An elapsed wall-clock time in a test is a bound waiting to race the clock: assert the mechanism instead (benchmarks measure time).",
        },
      ],
    },
  },
);
