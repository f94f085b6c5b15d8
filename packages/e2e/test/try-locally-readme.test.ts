// The SDK README's "Try your app locally" section, run as written: its shell blocks in bash and its app file in a
// child process whose only Azure settings are those `podidentity-testbed env` exports. The app's folder has
// @podidentity/sdk and @azure/keyvault-secrets in node_modules, as an app installs them. The one line not run is
// `make build`: the suite runs after the build (turbo builds the testbed and the SDK before e2e's tests).
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, realpathSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const SDK = join(ROOT, "packages", "sdk");

interface Block {
  lang: string;
  text: string;
}

async function readmeSection(): Promise<Block[]> {
  const readme = await readFile(join(SDK, "README.md"), "utf8");
  const start = readme.indexOf("\n## Try your app locally\n");
  expect(start, "the SDK README has a 'Try your app locally' section").toBeGreaterThan(0);
  const end = readme.indexOf("\n## ", start + 1);
  const section = readme.slice(start, end === -1 ? undefined : end);
  return [...section.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1]!, text: m[2]! }));
}

let appDir: string;

beforeEach(async () => {
  appDir = await mkdtemp(join(tmpdir(), "podid-try-locally-"));
  // node_modules as `npm install @podidentity/sdk @azure/keyvault-secrets` leaves it (links to this workspace's copies)
  await mkdir(join(appDir, "node_modules", "@podidentity"), { recursive: true });
  await mkdir(join(appDir, "node_modules", "@azure"), { recursive: true });
  await symlink(SDK, join(appDir, "node_modules", "@podidentity", "sdk"));
  await symlink(realpathSync(join(SDK, "node_modules", "@azure", "keyvault-secrets")), join(appDir, "node_modules", "@azure", "keyvault-secrets"));
});

afterEach(async () => {
  // a failed run must not leave the testbed running
  if (existsSync(join(appDir, ".testbed", "testbed.pid"))) {
    const down = spawn(process.execPath, [join(ROOT, "packages", "testbed", "bin", "podidentity-testbed"), "down", "--dir", join(appDir, ".testbed")], { stdio: "ignore" });
    await once(down, "close");
  }
  await rm(appDir, { recursive: true, force: true });
});

describe("SDK README: try your app locally", () => {
  it("runs the README's commands and unchanged app against podidentity-testbed up, without root, and prints the README's output", async () => {
    const blocks = await readmeSection();
    const [setup, app, run, output] = blocks;
    expect(blocks.map((b) => b.lang)).toEqual(["sh", "js", "sh", ""]);
    expect(setup!.text.split("\n")[0]).toBe("make build");
    expect(app!.text).not.toMatch(/disableChallengeResourceVerification|127\.0\.0\.1|endpoint/);
    await writeFile(join(appDir, "app.mjs"), app!.text);

    const script = [
      "set -eu",
      `cd ${JSON.stringify(ROOT)}`,
      ...setup!.text.split("\n").filter((l) => l !== "make build"),
      `cd ${JSON.stringify(appDir)}`,
      run!.text,
    ].join("\n");
    // a user's shell: PATH (with this Node) and HOME, no proxy or Azure variables, not root-only tools
    const bash = spawn("bash", ["-c", script], { env: { PATH: process.env["PATH"], HOME: appDir }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    bash.stdout.on("data", (d: Buffer) => (stdout += String(d)));
    bash.stderr.on("data", (d: Buffer) => (stderr += String(d)));
    const kill = setTimeout(() => bash.kill("SIGKILL"), 60_000);
    const [code] = (await once(bash, "close")) as [number];
    clearTimeout(kill);
    const log = await readFile(join(appDir, "testbed.log"), "utf8").catch(() => "(no testbed.log)");
    expect(code, `${stdout}\n${stderr}\n${log}`).toBe(0);
    const anyPid = (text: string): string => text.replace(/\(pid \d+\)/g, "(pid N)");
    expect(anyPid(stdout)).toBe(anyPid(output!.text));
    expect(stderr).toBe("");
    // the testbed really served it: the vault under its real name, through the proxy; and it stopped
    expect(log).toContain("proxy         http://127.0.0.1:");
    expect(log).toContain("secret        https://my-vault.vault.azure.net/secrets/db-password (get, list: my-app)");
    expect(log).toContain("SIGTERM: stopping");
    expect(log).not.toContain("s3cr3t-value");
    expect(existsSync(join(appDir, ".testbed", "testbed.pid"))).toBe(false);
  }, 90_000);
});
