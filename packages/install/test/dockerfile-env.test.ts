// scripts/dockerfile-env.mjs: the one reader of the images' runtime environment (the benches' NODE_OPTIONS,
// scripts/build-images.sh's image config). Expected values are written out by hand from Docker's rules, never
// computed by the reader under test.
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DockerfileEnvError, dockerfileEnv, nodeOptionsArgv, parseDockerfileEnv } from "../../../scripts/dockerfile-env.mjs";

const pexec = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "../../..");
const CLI = join(ROOT, "scripts/dockerfile-env.mjs");

/** The environment of a Dockerfile given as lines. */
const envOf = (...lines: string[]): Record<string, string> => parseDockerfileEnv(lines.join("\n"), "test/Dockerfile");

/** The DockerfileEnvError a Dockerfile given as lines is refused with. */
function refusal(...lines: string[]): { message: string; line: number | undefined } {
  try {
    envOf(...lines);
  } catch (error) {
    if (!(error instanceof DockerfileEnvError)) throw error;
    expect(error.code).toBe("DOCKERFILE_ENV_UNSUPPORTED");
    expect(error.file).toBe("test/Dockerfile");
    return { message: error.message, line: error.line };
  }
  throw new Error("the Dockerfile was accepted");
}

describe("the images' Dockerfiles", () => {
  it("NMI's final stage sets NODE_ENV and V8's heap bounds, and nothing of its build stage", () => {
    const env = dockerfileEnv(join(ROOT, "packages/nmi/Dockerfile"));
    expect(Object.entries(env)).toEqual([
      ["NODE_ENV", "production"],
      ["NODE_OPTIONS", "--max-semi-space-size=4 --max-old-space-size=96"],
    ]);
    expect(nodeOptionsArgv(env["NODE_OPTIONS"]!)).toEqual(["--max-semi-space-size=4", "--max-old-space-size=96"]);
  });

  it("MIC's final stage sets NODE_ENV and the semi-space bound, and nothing of its build stage", () => {
    const env = dockerfileEnv(join(ROOT, "packages/mic/Dockerfile"));
    expect(Object.entries(env)).toEqual([
      ["NODE_ENV", "production"],
      ["NODE_OPTIONS", "--max-semi-space-size=4"],
    ]);
    expect(nodeOptionsArgv(env["NODE_OPTIONS"]!)).toEqual(["--max-semi-space-size=4"]);
  });
});

describe("stages", () => {
  it("the final stage's ENV only: a build stage's ENV does not leak into the image", () => {
    expect(envOf("FROM node:24 AS build", "ENV CI=true TURBO_TELEMETRY_DISABLED=1", "RUN make", "FROM node:24-slim", "ENV NODE_ENV=production")).toEqual({ NODE_ENV: "production" });
    expect(envOf("FROM node:24 AS build", "ENV CI=true", "FROM node:24-slim")).toEqual({});
  });

  it("a stage built FROM an earlier stage inherits its environment (stage names are case-insensitive)", () => {
    expect(envOf("FROM node:24 AS Base", "ENV A=1 B=2", "FROM base AS app", "ENV B=3", "FROM app", "ENV C=4")).toEqual({ A: "1", B: "3", C: "4" });
  });

  it("instructions are case-insensitive, FROM's flags are skipped", () => {
    expect(envOf("from --platform=linux/amd64 node:24 as build", "Env A=1", "env B 2")).toEqual({ A: "1", B: "2" });
  });
});

describe("the two ENV forms", () => {
  it("KEY=value pairs, several on one instruction", () => {
    expect(envOf("FROM x", 'ENV A=1 B="two words" C=', "ENV D=x#y")).toEqual({ A: "1", B: "two words", C: "", D: "x#y" });
  });

  it("the legacy KEY value: everything after the key's blanks, inner blanks kept", () => {
    expect(envOf("FROM x", "ENV GREETING hello   big world", 'ENV QUOTED "a b"  c')).toEqual({ GREETING: "hello   big world", QUOTED: "a b  c" });
    // Docker's own example: the first word has no `=`, so this is the legacy form and ONE's value is the rest
    expect(envOf("FROM x", "ENV ONE TWO= THREE=world")).toEqual({ ONE: "TWO= THREE=world" });
  });
});

describe("quotes and escapes, as Docker's shell lexer evaluates them", () => {
  it("outside quotes a backslash escapes any character", () => {
    expect(envOf("FROM x", "ENV DOG=Rex\\ The\\ Dog Q=\\\"hi\\\" D=\\$HOME")).toEqual({ DOG: "Rex The Dog", Q: '"hi"', D: "$HOME" });
  });

  it('inside "…" a backslash escapes only " $ and \\; any other stays', () => {
    expect(envOf("FROM x", 'ENV A="say \\"hi\\"" B="\\$HOME" C="back\\\\slash" D="keep\\n"')).toEqual({ A: 'say "hi"', B: "$HOME", C: "back\\slash", D: "keep\\n" });
  });

  it("inside '…' everything is literal, $ and backslash included", () => {
    expect(envOf("FROM x", "ENV A='$HOME \\n' B='it'\\''s' C=a\"b c\"'d e'f")).toEqual({ A: "$HOME \\n", B: "it's", C: "ab cd ef" });
  });
});

describe("lines", () => {
  it("a trailing backslash continues the instruction; comment and blank lines inside are skipped, leading blanks kept", () => {
    const env = envOf("FROM x", "ENV A=1 \\", "  # a comment inside", "", '    B="x \\', 'y" \\  ', "    C=3");
    expect(env).toEqual({ A: "1", B: "x y", C: "3" });
    // Docker's LegacyKeyValueFormat example: the continuation lines' leading blanks stay in the value
    expect(envOf("FROM x", "ENV DEPS \\", "    curl \\", "    git")).toEqual({ DEPS: "curl     git" });
  });

  it("# starts a comment only at the start of a line; CRLF line ends and a BOM are read as Docker reads them", () => {
    expect(parseDockerfileEnv("\uFEFF# ENV NOT=this\r\nFROM x\r\n   # ENV NOR=this\r\nENV A=1\r\n", "test/Dockerfile")).toEqual({ A: "1" });
  });
});

describe("override order", () => {
  it("a later ENV overrides an earlier one in place, as the image config lists it", () => {
    expect(Object.entries(envOf("FROM x", "ENV A=1 B=2", "ENV A=3", "ENV C=4 B=5"))).toEqual([
      ["A", "3"],
      ["B", "5"],
      ["C", "4"],
    ]);
  });

  it("any valid key is a key, __proto__ and constructor included", () => {
    expect(Object.entries(envOf("FROM x", "ENV __proto__=a constructor=b"))).toEqual([
      ["__proto__", "a"],
      ["constructor", "b"],
    ]);
  });

  it("baseEnv is the base image's: kept unless the Dockerfile sets the key, which keeps its place", () => {
    const baseEnv = { PATH: "/usr/bin:/bin" };
    expect(Object.entries(parseDockerfileEnv("FROM x\nENV A=1\n", "f", { baseEnv }))).toEqual([
      ["PATH", "/usr/bin:/bin"],
      ["A", "1"],
    ]);
    expect(Object.entries(parseDockerfileEnv("FROM x\nENV A=1\nENV PATH=/opt/bin:/usr/bin:/bin\n", "f", { baseEnv }))).toEqual([
      ["PATH", "/opt/bin:/usr/bin:/bin"],
      ["A", "1"],
    ]);
  });
});

describe("what it cannot evaluate is an error naming the file and the instruction's line", () => {
  it("$VAR and ${VAR} substitution, quoted or not", () => {
    expect(refusal("FROM x", "ENV A=1", "ENV B=$A")).toEqual({ line: 3, message: "test/Dockerfile:3: ENV B=$A: $ substitution is not supported (write the value out, or escape the $ as \\$)" });
    expect(refusal("FROM x", "ENV A=1 \\", '  B="${A}/bin"').message).toBe('test/Dockerfile:2: ENV B="${A}/bin": $ substitution is not supported (write the value out, or escape the $ as \\$)');
    expect(refusal("FROM x", "ENV PATH /opt/bin:$PATH").line).toBe(2);
  });

  it("malformed ENV instructions", () => {
    expect(refusal("FROM x", 'ENV A="open').message).toBe('test/Dockerfile:2: ENV A="open: unterminated double quote');
    expect(refusal("FROM x", "ENV A='open").message).toBe("test/Dockerfile:2: ENV A='open: unterminated single quote");
    expect(refusal("FROM x", "ENV A=1 B").message).toBe('test/Dockerfile:2: ENV: "B" is not KEY=value');
    expect(refusal("FROM x", "ENV A").message).toBe("test/Dockerfile:2: ENV A: needs a value (ENV KEY=value)");
    expect(refusal("FROM x", "ENV").message).toBe("test/Dockerfile:2: ENV needs KEY=value");
    expect(refusal("FROM x", 'ENV "A"=1').message).toBe('test/Dockerfile:2: ENV key "\\"A\\"": only letters, digits, _ . and - are supported');
  });

  it("ENV outside a stage, no stage, a FROM it cannot resolve", () => {
    expect(refusal("ENV A=1", "FROM x")).toEqual({ line: 1, message: "test/Dockerfile:1: ENV before the first FROM" });
    expect(refusal("# only a comment")).toEqual({ line: undefined, message: "test/Dockerfile: no FROM instruction" });
    expect(refusal("ARG BASE=node:24", "FROM ${BASE}").message).toBe("test/Dockerfile:2: FROM ${BASE}: only a literal image or stage name is supported (no $ARG)");
    expect(refusal("FROM x AS").message).toBe("test/Dockerfile:1: FROM x AS: expected FROM <image> [AS <name>]");
  });

  it("an escape directive other than \\, and heredocs (whose body lines are not instructions)", () => {
    expect(refusal("# escape=`", "FROM x", "ENV A=1")).toEqual({ line: 1, message: "test/Dockerfile:1: # escape=` is not supported (only \\)" });
    expect(envOf("# escape=\\", "FROM x", "ENV A=1")).toEqual({ A: "1" });
    expect(refusal("FROM x", "RUN <<EOF", "ENV A=1", "EOF").message).toBe("test/Dockerfile:2: RUN with a heredoc is not supported (classic builder syntax only)");
  });
});

describe("nodeOptionsArgv splits NODE_OPTIONS as node does", () => {
  it("on spaces, with double quotes grouping and backslash escaping inside them", () => {
    expect(nodeOptionsArgv("")).toEqual([]);
    expect(nodeOptionsArgv("  --a   --b=1 ")).toEqual(["--a", "--b=1"]);
    expect(nodeOptionsArgv('--title="a \\"b\\" c" --x ""')).toEqual(["--title=a \"b\" c", "--x"]);
    expect(() => nodeOptionsArgv('--title="open')).toThrow('NODE_OPTIONS "--title=\\"open": unterminated string (node refuses it)');
  });

  it("agrees with node itself on a quoted value", async () => {
    const nodeOptions = '--title="podid \\"x\\" y"';
    const { stdout } = await pexec(process.execPath, ["-p", "process.title"], { env: { NODE_OPTIONS: nodeOptions } });
    expect(nodeOptionsArgv(nodeOptions)).toEqual([`--title=${stdout.trim()}`]);
  });
});

describe("the CLI (node scripts/dockerfile-env.mjs)", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "dockerfile-env-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const cli = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
    try {
      const { stdout, stderr } = await pexec(process.execPath, [CLI, ...args], { cwd: ROOT });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const e = error as { code?: unknown; stdout?: string; stderr?: string };
      if (typeof e.code !== "number") throw error;
      return { code: e.code, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
    }
  };

  it("prints the final stage's KEY=value lines, over --base-env", async () => {
    expect(await cli("packages/nmi/Dockerfile")).toEqual({ code: 0, stdout: "NODE_ENV=production\nNODE_OPTIONS=--max-semi-space-size=4 --max-old-space-size=96\n", stderr: "" });
    expect((await cli("--base-env", "PATH=/bin", "--base-env", "NODE_ENV=development", "packages/mic/Dockerfile")).stdout).toBe("PATH=/bin\nNODE_ENV=production\nNODE_OPTIONS=--max-semi-space-size=4\n");
  });

  it("--get prints one value, and fails when the final stage does not set it", async () => {
    expect(await cli("--get", "NODE_OPTIONS", "packages/mic/Dockerfile")).toEqual({ code: 0, stdout: "--max-semi-space-size=4\n", stderr: "" });
    expect(await cli("--get", "CI", "packages/mic/Dockerfile")).toEqual({ code: 1, stdout: "", stderr: "dockerfile-env: packages/mic/Dockerfile: its final stage sets no ENV CI\n" });
  });

  it("a Dockerfile it cannot read fails with the error on stderr and nothing on stdout", async () => {
    const path = join(dir, "Dockerfile");
    await writeFile(path, "FROM x\nENV A=1\nENV B=$A\n");
    expect(await cli(path)).toEqual({ code: 1, stdout: "", stderr: `dockerfile-env: ${path}:3: ENV B=$A: $ substitution is not supported (write the value out, or escape the $ as \\$)\n` });
    expect((await cli()).stderr).toBe("dockerfile-env: usage: node scripts/dockerfile-env.mjs [--base-env KEY=VALUE]... [--get KEY] DOCKERFILE\n");
  });
});

describe("scripts/build-images.sh --print-config: each image's umoci config from its Dockerfile", () => {
  it("every final-stage ENV over the node images' PATH, and the Dockerfile's user, entrypoint and ports", async () => {
    const version = (pkg: string): string => (JSON.parse(readFileSync(join(ROOT, `packages/${pkg}/package.json`), "utf8")) as { version: string }).version;
    const common = (pkg: string): string[] => [
      ...["--os", "linux", "--architecture", "amd64", "--created", "1970-01-01T00:00:00Z", "--config.workingdir", "/app"],
      ...["--config.label", `org.opencontainers.image.title=podidentity-${pkg}`, "--config.label", `org.opencontainers.image.version=${version(pkg)}`],
      ...["--config.env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "--config.env", "NODE_ENV=production"],
    ];
    const { stdout } = await pexec("bash", [join(ROOT, "scripts/build-images.sh"), "--print-config"], {
      cwd: ROOT,
      // no root, mmdebstrap or umoci needed; `node` is the one running this test
      env: { PATH: `${dirname(process.execPath)}:/usr/bin:/bin`, SOURCE_DATE_EPOCH: "0" },
    });
    expect(stdout.split("\n")).toEqual([
      ...common("nmi"),
      ...["--config.env", "NODE_OPTIONS=--max-semi-space-size=4 --max-old-space-size=96", "--config.user", "0:0"],
      ...["--config.entrypoint", "/usr/local/bin/podidentity-nmi-entrypoint"],
      ...["--config.exposedports", "2579/tcp", "--config.exposedports", "8085/tcp", "--config.exposedports", "9090/tcp"],
      ...common("mic"),
      ...["--config.env", "NODE_OPTIONS=--max-semi-space-size=4", "--config.user", "65532:65532"],
      ...["--config.entrypoint", "node", "--config.entrypoint", "/app/dist/main.js"],
      ...["--config.exposedports", "8080/tcp", "--config.exposedports", "8888/tcp"],
      "",
    ]);
  });
});
