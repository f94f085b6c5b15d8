// Prints the plain "N passed, N failed" line for .ci/run from the vitest JSON reports in .reports/.
// A package whose tests never produced a report, and a test file that failed to load, count as failures.
// Each failed test is named (package, file, full title, the start of its message) just above the last line, so the
// tail of a CI log says which test failed. Anything shaped like a JWT or a long base64 run is masked.
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const root = fileURLToPath(new URL("..", import.meta.url));
let passed = 0;
let failed = 0;
let skipped = 0;
const failures = [];
const MESSAGE_CHARS = 300;
const mask = (text) =>
  text
    .replace(/\x1b\[[0-9;]*m/g, "")
    .replace(/eyJ[\w-]+\.[\w-]+\.[\w-]*/g, "<jwt>")
    .replace(/[A-Za-z0-9+/=_-]{64,}/g, "<redacted>")
    .replace(/\s+/g, " ")
    .trim();
const firstChars = (text) => {
  const flat = mask(text ?? "");
  return flat.length > MESSAGE_CHARS ? `${flat.slice(0, MESSAGE_CHARS)}…` : flat;
};
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
    const fileName = file.name.startsWith(root) ? file.name.slice(root.length) : file.name;
    if (file.status === "failed" && file.assertionResults.length === 0) {
      failures.push(`${manifest.name}: ${fileName} failed to run: ${firstChars(file.message)}`);
      failed += 1;
    }
    for (const test of file.assertionResults) {
      if (test.status !== "failed") continue;
      failures.push(`${manifest.name}: ${fileName} > ${test.fullName}: ${firstChars((test.failureMessages ?? []).join(" "))}`);
    }
  }
}
for (const line of failures) console.log(`FAILED ${line}`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
