// @ts-check
import root from "../../eslint.config.js";

export default [
  ...root,
  {
    // The demo is a program: printing is what it is for.
    files: ["src/demo.ts"],
    rules: { "no-console": "off" },
  },
  {
    // Client programs the tests run inside pods with plain node.
    files: ["test/fixtures/**/*.mjs"],
    languageOptions: { globals: { process: "readonly", Buffer: "readonly", console: "readonly" } },
  },
];
