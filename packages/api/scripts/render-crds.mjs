// Writes deploy/crds/crds.yaml from the built package (run through `pnpm run render-crds`, which builds first).
// The drift test in test/crds-yaml-drift.test.ts fails when the checked-in file differs from this output.
import { writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { renderCrdsYaml } from "../dist/index.js";

const target = resolve(dirname(fileURLToPath(import.meta.url)), "../../../deploy/crds/crds.yaml");
writeFileSync(target, renderCrdsYaml());
process.stdout.write(`wrote ${target}\n`);
