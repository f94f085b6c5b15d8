import { execFile } from "node:child_process";
import { chmod, mkdtemp, readlink, rm, writeFile } from "node:fs/promises";
import { existsSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const pexec = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "../../..");
const ci = process.env["CI"] === "true";

/** The deploy command the Dockerfiles run and this test repeats: pnpm 10 deploys a non-injected workspace only with --legacy. */
const PNPM_DEPLOY = (pkg: string, out: string): string[] => ["--filter", `@podidentity/${pkg}`, "deploy", "--prod", "--legacy", "--prefer-offline", out];
const DEPLOY_IN_DOCKERFILE = (pkg: string): string => `RUN pnpm --filter @podidentity/${pkg} deploy --prod --legacy /out`;

interface Instruction {
  keyword: string;
  args: string;
}

/** Dockerfile instructions (continuations joined, comments and parser directives dropped, heredoc bodies skipped). */
function parseDockerfile(text: string): Instruction[] {
  const lines = text.split("\n");
  const instructions: Instruction[] = [];
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    if (/^\s*(#|$)/.test(line)) continue;
    while (line.endsWith("\\") && i + 1 < lines.length) line = `${line.slice(0, -1)} ${lines[++i]!.trim()}`;
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`unparsable Dockerfile line: ${line}`);
    instructions.push({ keyword: m[1]!.toUpperCase(), args: m[2]! });
    const heredoc = /<<-?["']?(\w+)/.exec(m[2]!);
    if (heredoc) while (++i < lines.length && lines[i]!.trim() !== heredoc[1]) continue;
  }
  return instructions;
}

/**
 * What the classic builder (docker build without BuildKit, e.g. Debian's docker.io 20.10) rejects or cannot fetch:
 * a `# syntax=`/`# check=` directive (a frontend pulled from a registry), heredocs, and every instruction flag it
 * does not know. The flags it knows, per instruction; anything else is BuildKit-only.
 */
const CLASSIC_FLAGS: Record<string, readonly string[]> = { FROM: ["--platform"], COPY: ["--from", "--chown"], ADD: ["--chown"] };

function buildKitOnly(text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/^#\s*(syntax|check)\s*=.*$/gim)) found.push(`parser directive: ${m[0]}`);
  for (const { keyword, args } of parseDockerfile(text)) {
    if (/<<-?["']?\w+/.test(args)) found.push(`heredoc: ${keyword} ${args}`);
    for (const flag of args.matchAll(/(?:^|\s)(--[a-z-]+)(?==|\s)/g)) {
      // only leading flags are instruction flags (RUN's command line may hold its own --options)
      if (!new RegExp(`^(\\s*--[a-z-]+(=\\S+)?\\s+)*${flag[1]}`).test(args)) continue;
      if (!(CLASSIC_FLAGS[keyword] ?? []).includes(flag[1]!)) found.push(`${keyword} ${flag[1]}`);
    }
  }
  return found;
}

/** NMI's entrypoint script, a file the Dockerfile and scripts/build-images.sh copy into the image. */
const NMI_ENTRYPOINT_SOURCE = "packages/nmi/image/podidentity-nmi-entrypoint";
const NMI_ENTRYPOINT = "/usr/local/bin/podidentity-nmi-entrypoint";

const toolchainNode = /PODIDENTITY_NODE_VERSION=(\S+)/.exec(readFileSync(resolve(ROOT, "scripts/toolchain.sh"), "utf8"))?.[1];

for (const pkg of ["mic", "nmi"] as const) {
  const path = resolve(ROOT, `packages/${pkg}/Dockerfile`);
  const text = readFileSync(path, "utf8");
  const instructions = parseDockerfile(text);
  const froms = instructions.filter((i) => i.keyword === "FROM");
  const finalStage = instructions.slice(instructions.lastIndexOf(froms.at(-1)!));

  describe(`packages/${pkg}/Dockerfile (static checks; images are built elsewhere with docker build)`, () => {
    it("is multi-stage: a build stage, and a runtime stage that copies only its output", () => {
      expect(froms.length).toBeGreaterThanOrEqual(2);
      expect(froms[0]!.args).toMatch(/\s+AS\s+build$/i);
      const copies = finalStage.filter((i) => i.keyword === "COPY").map((c) => c.args);
      expect(copies.filter((c) => c.startsWith("--from"))).toEqual(["--from=build /out /app"]);
      // besides the build output, only NMI's entrypoint script (a file in the repository)
      expect(copies.filter((c) => !c.startsWith("--from"))).toEqual(pkg === "nmi" ? [`${NMI_ENTRYPOINT_SOURCE} ${NMI_ENTRYPOINT}`] : []);
    });

    it("every base image is Node 24 pinned to a full version tag (the toolchain's), never latest", () => {
      for (const from of froms) {
        const image = from.args.split(/\s+/)[0]!;
        expect(image).toMatch(/^node:24\.\d+\.\d+-[a-z0-9-]+$/);
        expect(image).toBe(`node:${toolchainNode}-bookworm-slim`);
      }
      expect(text).not.toMatch(/:latest\b/);
    });

    it("installs production dependencies only, with the same pnpm deploy this suite runs", () => {
      expect(instructions.filter((i) => i.keyword === "RUN").map((i) => `RUN ${i.args}`)).toContain(DEPLOY_IN_DOCKERFILE(pkg));
      expect(text).toContain("pnpm install --frozen-lockfile");
      expect(text).toMatch(/npm install --global [^\n]*pnpm@10\.34\.9/);
    });

    it("uses classic builder syntax only: no frontend to pull, no heredoc, no BuildKit-only flag (--exclude, --chmod, --mount…)", () => {
      expect(buildKitOnly(text)).toEqual([]);
    });

    it("has no HEALTHCHECK (Kubernetes probes /healthz and /readyz instead)", () => {
      expect(instructions.some((i) => i.keyword === "HEALTHCHECK")).toBe(false);
    });

    it("runs the package's dist/main.js", () => {
      const entry = finalStage.find((i) => i.keyword === "ENTRYPOINT")!;
      expect(entry).toBeDefined();
      if (pkg === "mic") expect(JSON.parse(entry.args)).toEqual(["node", "/app/dist/main.js"]);
      else {
        expect(JSON.parse(entry.args)).toEqual([NMI_ENTRYPOINT]);
        expect(readFileSync(resolve(ROOT, NMI_ENTRYPOINT_SOURCE), "utf8")).toContain('exec node "${PODIDENTITY_NMI_MAIN:-/app/dist/main.js}" "$@"');
      }
    });

    if (pkg === "mic") {
      it("MIC runs as a numeric non-root user (so runAsNonRoot can verify it)", () => {
        const user = finalStage.filter((i) => i.keyword === "USER").at(-1);
        expect(user?.args).toMatch(/^[1-9]\d*:[1-9]\d*$/);
      });
    } else {
      it("NMI has iptables (nft and legacy), conntrack and sysctl, and runs as root for iptables", () => {
        expect(finalStage.find((i) => i.keyword === "RUN" && i.args.includes("apt-get install"))?.args).toMatch(/iptables conntrack procps/);
        expect(finalStage.filter((i) => i.keyword === "USER").at(-1)?.args).toBe("0:0");
      });
    }
  });
}

describe("the BuildKit-only check itself", () => {
  it("finds each construct the classic builder rejects, and passes what it accepts", () => {
    const bad = [
      "# syntax=docker/dockerfile:1.19",
      "FROM node:24 AS build",
      "COPY --exclude=**/node_modules . .",
      "COPY --chmod=0755 <<'EOF' /usr/local/bin/x\necho hi\nEOF",
      "COPY --link --from=build /out /app",
      "RUN --mount=type=cache,target=/root/.npm npm ci",
      "ADD --checksum=sha256:00 https://example.com/x /x",
    ].join("\n");
    expect(buildKitOnly(bad)).toEqual([
      "parser directive: # syntax=docker/dockerfile:1.19",
      "COPY --exclude",
      "heredoc: COPY --chmod=0755 <<'EOF' /usr/local/bin/x",
      "COPY --chmod",
      "COPY --link",
      "RUN --mount",
      "ADD --checksum",
    ]);
    const good = "FROM --platform=linux/amd64 node:24 AS build\nCOPY --chown=0:0 --from=build /out /app\nRUN npm install --global --no-audit pnpm\n";
    expect(buildKitOnly(good)).toEqual([]);
  });
});

describe(".dockerignore keeps the build context to sources", () => {
  const ignored = readFileSync(resolve(ROOT, ".dockerignore"), "utf8").split("\n").filter((l) => l && !l.startsWith("#"));
  it.each(["**/node_modules", "**/dist", ".tooling", ".git", ".reports", "**/coverage", "out"])("excludes %s", (pattern) => {
    expect(ignored).toContain(pattern);
  });
  it("re-includes nothing (a `!` line could bring node_modules back)", () => {
    expect(ignored.filter((l) => l.startsWith("!"))).toEqual([]);
  });
});

describe("the NMI entrypoint picks the node's iptables backend", () => {
  const script = readFileSync(resolve(ROOT, NMI_ENTRYPOINT_SOURCE), "utf8");
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  /** Runs the script with stub iptables-*-save printing `nft`/`legacy` rules and a stub node that reports what it got. */
  async function run(rules: { nft: number; legacy: number }) {
    const dir = await mkdtemp(join(tmpdir(), "nmi-entrypoint-"));
    dirs.push(dir);
    const stubs = join(dir, "stubs");
    await pexec("mkdir", ["-p", stubs]);
    const write = async (name: string, body: string) => {
      await writeFile(join(stubs, name), `#!/bin/sh\n${body}\n`);
      await chmod(join(stubs, name), 0o755);
    };
    for (const mode of ["nft", "legacy"] as const) {
      const lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ...Array.from({ length: rules[mode] }, (_, i) => `-A KUBE-SERVICES -j RULE${i}`), "COMMIT"];
      await write(`iptables-${mode}-save`, `printf '%s\\n' ${lines.map((l) => `'${l}'`).join(" ")}`);
      await write(`iptables-${mode}`, "exit 0");
      await write(`iptables-${mode}-restore`, "exit 0");
    }
    await write("node", 'echo "main=$1 args=$2 $3"; echo "iptables=$(readlink "$(command -v iptables)")"');
    await writeFile(join(dir, "entrypoint.sh"), script);
    const { stdout, stderr } = await pexec("sh", [join(dir, "entrypoint.sh"), "--node=aks-1", "--operation-mode=standard"], {
      env: { PATH: `${stubs}:/usr/bin:/bin`, PODIDENTITY_IPTABLES_BIN_DIR: join(dir, "bin"), PODIDENTITY_NMI_MAIN: "/app/dist/main.js" },
    });
    return { stdout, stderr, stubs, bin: join(dir, "bin") };
  }

  it("legacy when the node's rules are in legacy tables (kubelet/kube-proxy wrote them there)", async () => {
    const r = await run({ nft: 0, legacy: 12 });
    expect(r.stdout).toContain("main=/app/dist/main.js args=--node=aks-1 --operation-mode=standard");
    expect(r.stdout).toContain(`iptables=${join(r.stubs, "iptables-legacy")}`);
    expect(await readlink(join(r.bin, "iptables-save"))).toBe(join(r.stubs, "iptables-legacy-save"));
    expect(await readlink(join(r.bin, "iptables-restore"))).toBe(join(r.stubs, "iptables-legacy-restore"));
    expect(JSON.parse(r.stderr)).toMatchObject({ level: 30, backend: "legacy", nftRules: 0, legacyRules: 12 });
  });

  it("nft when the nft tables hold more rules, and when neither holds any", async () => {
    expect((await run({ nft: 7, legacy: 2 })).stdout).toContain("iptables-nft\n");
    const empty = await run({ nft: 0, legacy: 0 });
    expect(JSON.parse(empty.stderr)).toMatchObject({ backend: "nft" });
  });
});

/** Symlinks under `dir` (not followed) whose target lies outside it. */
function linksLeaving(dir: string, base = dir): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...linksLeaving(p, base));
    if (!entry.isSymbolicLink()) continue;
    let target: string;
    try {
      target = realpathSync(p);
    } catch {
      continue; // dangling: nothing can load through it
    }
    if (!target.startsWith(`${base}/`)) out.push(`${p.slice(base.length + 1)} -> ${target}`);
  }
  return out;
}

describe("pnpm deploy --prod gives each image a complete production dependency closure", () => {
  for (const pkg of ["mic", "nmi"] as const) {
    const pkgDir = resolve(ROOT, `packages/${pkg}`);
    const hasMain = existsSync(join(pkgDir, "src/main.ts"));
    // Skipped only while the package has no main.ts yet; under CI it must run.
    it.skipIf(!hasMain && !ci)(`@podidentity/${pkg}: node dist/main.js --version runs from the deployed folder alone`, { timeout: 180_000 }, async () => {
      expect(hasMain, `packages/${pkg}/src/main.ts does not exist`).toBe(true);
      if (!existsSync(join(pkgDir, "dist/main.js"))) await pexec("pnpm", ["--filter", `@podidentity/${pkg}`, "run", "build"], { cwd: ROOT, timeout: 120_000 });
      const out = join(await mkdtemp(join(tmpdir(), `deploy-${pkg}-`)), "out");
      try {
        // The workspace's pnpm lock serialises with other pnpm runs on shared machines; flock is optional.
        const useFlock = existsSync("/usr/bin/flock");
        const [cmd, args] = useFlock ? ["flock", ["-w", "120", "/tmp/podidentity-pnpm.lock", "pnpm", ...PNPM_DEPLOY(pkg, out)]] : ["pnpm", PNPM_DEPLOY(pkg, out)];
        await pexec(cmd as string, args as string[], { cwd: ROOT, timeout: 150_000, env: { ...process.env, CI: "true" } });
        const deployed = JSON.parse(readFileSync(join(out, "package.json"), "utf8")) as { name: string; version: string; devDependencies?: unknown };
        expect(deployed.name).toBe(`@podidentity/${pkg}`);
        expect(existsSync(join(out, "node_modules/@podidentity/api/package.json"))).toBe(true);
        // Nothing may load from the workspace: the only way out is pnpm's self-link of the package itself.
        expect(linksLeaving(out).filter((l) => !l.endsWith(` -> ${pkgDir}`))).toEqual([]);
        // Run from an unrelated folder with a bare environment, so only the deployed node_modules can resolve.
        const r = await pexec(process.execPath, [join(out, "dist/main.js"), "--version"], { cwd: tmpdir(), env: { PATH: "/usr/bin:/bin" }, timeout: 30_000 });
        expect(r.stdout.trim()).toBe(deployed.version);
      } finally {
        await rm(join(out, ".."), { recursive: true, force: true });
      }
    });
  }
});
