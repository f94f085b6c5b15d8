// @ts-check
import root from "../../eslint.config.js";

export default [
  ...root,
  {
    // The examples are programs, not libraries: printing is what they are for.
    files: ["src/**"],
    rules: { "no-console": "off" },
  },
];
