// Prints the plain "N passed, N failed" line for .ci/run from the vitest JSON reports in .reports/.
// A package whose tests never produced a report, and a test file that failed to load, count as failures.
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const root = fileURLToPath(new URL("..", import.meta.url));
let passed = 0;
let failed = 0;
let skipped = 0;
for (const dir of readdirSync(join(root, "packages"))) {
  const manifestPath = join(root, "packages", dir, "package.json");
  if (!existsSync(manifestPath)) continue;
  const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
  if (!manifest.scripts?.test) continue;
  const reportPath = join(root, ".reports", `${dir}.json`);
  if (!existsSync(reportPath)) {
    console.log(`${manifest.name}: no test report (the test run did not complete)`);
    failed += 1;
    continue;
  }
  const report = JSON.parse(readFileSync(reportPath, "utf8"));
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  skipped += report.numPendingTests + (report.numTodoTests ?? 0);
  for (const file of report.testResults) {
    if (file.status === "failed" && file.assertionResults.length === 0) {
      console.log(`${manifest.name}: ${file.name} failed to run: ${file.message}`);
      failed += 1;
    }
  }
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
