import { rm } from "node:fs/promises";
import { join } from "node:path";
import { build } from "tsup";

/**
 * Where the tests' copy of the demo lives: not dist/, which `turbo run build` may be cleaning while the tests
 * run; inside node_modules so the workspace packages resolve as they do from dist/.
 */
export const TEST_BUILD_DIR = join(import.meta.dirname, "..", "..", "node_modules", ".cache", "e2e-test");

export default async function setup(): Promise<void> {
  await rm(TEST_BUILD_DIR, { recursive: true, force: true });
  await build({ config: join(import.meta.dirname, "..", "..", "tsup.config.ts"), outDir: TEST_BUILD_DIR, silent: true, sourcemap: false });
}
