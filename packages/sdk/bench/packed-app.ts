// A throw-away app folder outside the repository with the packed @podidentity/sdk (pnpm pack, as npm users get
// it) in node_modules, next to @azure/identity and @azure/keyvault-secrets: the layout a user's app has.
// Dependencies link to this workspace's install (offline); each resolves its own from the pnpm store.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, renameSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const SDK_DIR = fileURLToPath(new URL("..", import.meta.url));

export interface PackedApp {
  dir: string;
  remove: () => void;
}

export function createPackedApp(): PackedApp {
  const dir = mkdtempSync(join(tmpdir(), "podidentity-bench-"));
  const tarball = execFileSync("pnpm", ["pack", "--pack-destination", dir], { cwd: SDK_DIR, encoding: "utf8" }).trim().split("\n").at(-1)!;
  const scope = join(dir, "node_modules", "@podidentity");
  mkdirSync(scope, { recursive: true });
  execFileSync("tar", ["-xzf", tarball, "-C", scope]);
  renameSync(join(scope, "package"), join(scope, "sdk"));
  const manifest = JSON.parse(readFileSync(join(scope, "sdk", "package.json"), "utf8")) as { dependencies: Record<string, string> };
  const links = new Set([...Object.keys(manifest.dependencies), "@azure/identity", "@azure/keyvault-secrets"]);
  for (const dep of links) {
    const target = join(dir, "node_modules", dep);
    mkdirSync(dirname(target), { recursive: true });
    symlinkSync(realpathSync(join(SDK_DIR, "node_modules", dep)), target, "dir");
  }
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
