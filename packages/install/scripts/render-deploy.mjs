// Writes the checked-in deploy/ manifests from the built package (run through `pnpm run render-deploy`, which
// builds first). test/deploy-drift.test.ts fails when a checked-in file differs from this output.
import { writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { renderCrdsYaml } from "@podidentity/api";
import { DEPLOY_FILES, deployFileHeader, renderInstallYaml } from "../dist/index.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
for (const { path, options, command } of DEPLOY_FILES) {
  writeFileSync(resolve(root, path), renderInstallYaml(options, deployFileHeader(command)));
  process.stdout.write(`wrote ${path}\n`);
}
// The chart's CRDs (helm installs crds/ before the templates); test/helm-chart.test.ts checks they match.
writeFileSync(resolve(root, "charts/podidentity/crds/crds.yaml"), renderCrdsYaml());
process.stdout.write("wrote charts/podidentity/crds/crds.yaml\n");
