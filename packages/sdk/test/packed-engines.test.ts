// The packed package (what npm users install), imported on the oldest Node.js its engines allow and on older
// ones. Those Node binaries come from the npm registry's `node` package via scripts/ensure-node.sh, cached in
// ~/.cache/podidentity/node/<version>; the first run downloads them (about 10 s each).
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MINIMUM_NODE_VERSION } from "../src/node-version-check";

const SDK_DIR = fileURLToPath(new URL("..", import.meta.url));
const ENSURE_NODE = fileURLToPath(new URL("../../../scripts/ensure-node.sh", import.meta.url));
/** Just below the floor: 22.11 is an LTS release where undici 8 used to crash the import. */
const TOO_OLD = ["22.11.0", "20.20.0"];

// A local IMDS answering every request with a token, started by the app itself so that the check needs nothing
// but the Node binary under test.
const APP_BODY = `
const server = createServer((req, res) => {
  const now = Math.floor(Date.now() / 1000);
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ access_token: "t", expires_in: "3600", expires_on: String(now + 3600), resource: "https://vault.azure.net", token_type: "Bearer" }));
});
server.listen(0, "127.0.0.1", async () => {
  const credential = new PodIdentityCredential({ endpoint: "http://127.0.0.1:" + server.address().port });
  const token = await credential.getToken("https://vault.azure.net/.default");
  await credential.close();
  server.close();
  console.log(token.token === "t" ? "token ok on " + process.version : "wrong token");
});
`;

let app: string;
const nodes = new Map<string, string>();

function ensureNode(version: string): string {
  return execFileSync("bash", [ENSURE_NODE, version], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
}

function run(node: string, file: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(node, [file], { cwd: app, encoding: "utf8", timeout: 60_000, env: { PATH: process.env.PATH } });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

beforeAll(() => {
  app = mkdtempSync(join(tmpdir(), "podidentity-packed-"));
  // pnpm pack: exactly the files npm users get (dist is built by turbo before this package's tests).
  const packed = execFileSync("pnpm", ["pack", "--pack-destination", app], { cwd: SDK_DIR, encoding: "utf8" }).trim().split("\n").at(-1)!;
  const scope = join(app, "node_modules", "@podidentity");
  mkdirSync(scope, { recursive: true });
  execFileSync("tar", ["-xzf", packed, "-C", scope]);
  renameSync(join(scope, "package"), join(scope, "sdk"));
  // Its dependencies, from this workspace's install (offline): each links to its real folder in the pnpm store,
  // where its own dependencies are its siblings.
  const manifest = JSON.parse(readFileSync(join(scope, "sdk", "package.json"), "utf8")) as { dependencies: Record<string, string> };
  for (const dep of Object.keys(manifest.dependencies)) {
    const target = join(app, "node_modules", dep);
    mkdirSync(dirname(target), { recursive: true });
    symlinkSync(realpathSync(join(SDK_DIR, "node_modules", dep)), target, "dir");
  }
  writeFileSync(join(app, "app.mjs"), `import { createServer } from "node:http";\nimport { PodIdentityCredential } from "@podidentity/sdk";\n${APP_BODY}`);
  writeFileSync(join(app, "app.cjs"), `const { createServer } = require("node:http");\nconst { PodIdentityCredential } = require("@podidentity/sdk");\n${APP_BODY}`);
  for (const version of [MINIMUM_NODE_VERSION, ...TOO_OLD]) nodes.set(version, ensureNode(version));
}, 300_000);

afterAll(() => {
  if (app) rmSync(app, { recursive: true, force: true });
});

describe("engines: the packed @podidentity/sdk", () => {
  it("declares the floor that its entry module checks", () => {
    const pkg = JSON.parse(readFileSync(join(SDK_DIR, "package.json"), "utf8")) as { engines: { node: string } };
    expect(pkg.engines.node).toBe(`>=${MINIMUM_NODE_VERSION}`);
  });

  it("declares the highest floor found in its runtime dependency closure's engines", () => {
    const floors: string[] = [];
    const seen = new Set<string>();
    const visit = (dir: string): void => {
      const real = realpathSync(dir);
      if (seen.has(real)) return;
      seen.add(real);
      const pkg = JSON.parse(readFileSync(join(real, "package.json"), "utf8")) as {
        engines?: { node?: string };
        dependencies?: Record<string, string>;
      };
      // The lowest version a range admits is its first alternative's lower bound ("20 || >=22" admits 20).
      const first = pkg.engines?.node?.split("||")[0]?.match(/(\d+)(?:\.(\d+))?(?:\.(\d+))?/);
      if (first) floors.push([first[1], first[2] ?? "0", first[3] ?? "0"].join("."));
      for (const dep of Object.keys(pkg.dependencies ?? {})) {
        // Resolved as Node would from the package's real folder: its siblings in the pnpm store.
        for (let d = real; ; d = dirname(d)) {
          const candidate = join(d, "node_modules", dep);
          try {
            visit(candidate);
            break;
          } catch (error) {
            if ((error as { code?: string }).code !== "ENOENT") throw error;
          }
          if (dirname(d) === d) throw new Error(`cannot resolve ${dep} from ${real}`);
        }
      }
    };
    visit(join(app, "node_modules", "@podidentity", "sdk"));
    const key = (v: string): number => v.split(".").reduce((acc, part) => acc * 1000 + Number(part), 0);
    const highest = floors.sort((a, b) => key(a) - key(b)).at(-1);
    expect(seen.size).toBeGreaterThan(10);
    expect(highest).toBe(MINIMUM_NODE_VERSION);
  });

  it.each(["app.mjs", "app.cjs"])(`imports and gets a token on exactly Node ${MINIMUM_NODE_VERSION} (%s)`, (file) => {
    const result = run(nodes.get(MINIMUM_NODE_VERSION)!, file);
    expect(result.stderr).toBe("");
    expect(result.stdout.trim()).toBe(`token ok on v${MINIMUM_NODE_VERSION}`);
    expect(result.status).toBe(0);
  });

  it(`runs its bin on Node ${MINIMUM_NODE_VERSION}: podidentity --version`, () => {
    const result = run(nodes.get(MINIMUM_NODE_VERSION)!, "node_modules/@podidentity/sdk/dist/cli.js");
    expect(result.status).toBe(2); // no command: usage
    const version = spawnSync(nodes.get(MINIMUM_NODE_VERSION)!, ["node_modules/@podidentity/sdk/dist/cli.js", "--version"], { cwd: app, encoding: "utf8" });
    const pkg = JSON.parse(readFileSync(join(SDK_DIR, "package.json"), "utf8")) as { version: string };
    expect(version.stdout.trim()).toBe(pkg.version);
    expect(version.status).toBe(0);
  });

  it.each(TOO_OLD.flatMap((version) => ["app.mjs", "app.cjs", "node_modules/@podidentity/sdk/dist/cli.js"].map((file) => [version, file])))(
    "on Node %s, %s fails with a readable message naming the floor, before any dependency loads",
    (version, file) => {
      const result = run(nodes.get(version)!, file);
      expect(result.status).not.toBe(0);
      expect(result.stderr).toContain(`@podidentity/sdk needs Node.js >= ${MINIMUM_NODE_VERSION} (package.json "engines"); this is Node.js ${version}.`);
      expect(result.stderr).not.toMatch(/Cannot read properties/);
      expect(result.stdout).toBe("");
    },
  );
});
