#!/usr/bin/env node
// The runtime environment a Dockerfile gives its image: every ENV of its final stage, read the way `docker build`
// reads them. The benches start NMI and MIC with their images' NODE_OPTIONS and scripts/build-images.sh copies the
// whole environment into the images it builds without a container engine, so all three read it here, once.
//
//   node scripts/dockerfile-env.mjs [--base-env KEY=VALUE]... [--get KEY] DOCKERFILE
//
// prints KEY=value lines (values never hold a newline: the Dockerfile's lines end them), or with --get one value
// (exit 1 when the final stage does not set it). --base-env is the base image's environment, which the Dockerfile's
// ENV overrides in place, as an image's config does.
//
// Parsing follows BuildKit's Dockerfile parser and shell lexer (frontend/dockerfile/parser, shell/lex.go):
// instructions are case-insensitive; a line ending in `\` continues on the next (comment and blank lines inside are
// skipped, the next line's leading blanks kept); `#` starts a comment only at the start of a line; a stage starting
// `FROM <earlier stage>` inherits that stage's environment. ENV takes `KEY=value KEY2="quoted value"` and the legacy
// `KEY value with spaces`; quotes and backslashes are removed as the shell lexer does (outside quotes `\` escapes any
// character, inside "…" only `"`, `$` and `\`, inside '…' nothing). What this reader cannot evaluate to the value
// the image would hold — `$VAR` substitution, a `# escape=` other than `\`, heredocs — is an error naming the file
// and line, never a guess.
import { readFileSync, realpathSync } from "node:fs";
import { basename } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";

/** A Dockerfile this reader cannot read to the environment `docker build` would give the image. */
export class DockerfileEnvError extends Error {
  name = "DockerfileEnvError";
  code = "DOCKERFILE_ENV_UNSUPPORTED";

  /** `line`: 1-based, the instruction's first line; undefined for the file as a whole. */
  constructor(file, line, message) {
    super(`${line === undefined ? file : `${file}:${line}`}: ${message}`);
    this.file = file;
    this.line = line;
  }
}

/** The environment of `path`'s final stage, as `KEY: value` in the order the image's config lists them. */
export function dockerfileEnv(path, options = {}) {
  return parseDockerfileEnv(readFileSync(path, "utf8"), path, options);
}

/** dockerfileEnv of a Dockerfile's text; `file` names it in errors. */
export function parseDockerfileEnv(text, file, { baseEnv = {} } = {}) {
  checkEscapeDirective(text, file);
  // Maps: a key keeps its first position when set again, as in an image's config (and `__proto__` is just a key).
  /** @type {Map<string, Map<string, string>>} each named stage's environment, for `FROM <stage>` */
  const stages = new Map();
  /** @type {Map<string, string> | undefined} */
  let env;
  for (const { keyword, args, line } of instructions(text)) {
    const fail = (message) => new DockerfileEnvError(file, line, message);
    if (keyword === "FROM") {
      const [image, as, name, ...rest] = args.split(/\s+/).filter((w) => !w.startsWith("--"));
      if (!image || image.includes("$")) throw fail(`FROM ${args}: only a literal image or stage name is supported (no $ARG)`);
      if (as !== undefined && (as.toUpperCase() !== "AS" || !name || rest.length > 0)) throw fail(`FROM ${args}: expected FROM <image> [AS <name>]`);
      env = new Map(stages.get(image.toLowerCase()) ?? Object.entries(baseEnv));
      if (name) stages.set(name.toLowerCase(), env);
    } else if (keyword === "ENV") {
      if (!env) throw fail("ENV before the first FROM");
      for (const [key, value] of envPairs(args, fail)) env.set(key, value);
    } else if (["RUN", "COPY", "ADD"].includes(keyword) && /<<-?\s*["']?[A-Za-z_]/.test(args)) {
      // a heredoc's body lines are not instructions; skipping them needs BuildKit's heredoc rules
      throw fail(`${keyword} with a heredoc is not supported (classic builder syntax only)`);
    }
  }
  if (!env) throw new DockerfileEnvError(file, undefined, "no FROM instruction");
  return Object.fromEntries(env);
}

/**
 * Node's own split of NODE_OPTIONS into arguments (src/node_options.cc): spaces separate them, `"…"` groups one
 * with spaces, and inside quotes `\` escapes the next character.
 */
export function nodeOptionsArgv(nodeOptions) {
  const argv = [];
  let quoted = false;
  let startsNew = true;
  for (let i = 0; i < nodeOptions.length; i++) {
    let c = nodeOptions[i];
    if (c === "\\" && quoted) {
      if (i + 1 === nodeOptions.length) throw new Error(`NODE_OPTIONS ${JSON.stringify(nodeOptions)}: invalid escape at the end (node refuses it)`);
      c = nodeOptions[++i];
    } else if (c === " " && !quoted) {
      startsNew = true;
      continue;
    } else if (c === '"') {
      quoted = !quoted;
      continue;
    }
    if (startsNew) argv.push(c);
    else argv[argv.length - 1] += c;
    startsNew = false;
  }
  if (quoted) throw new Error(`NODE_OPTIONS ${JSON.stringify(nodeOptions)}: unterminated string (node refuses it)`);
  return argv;
}

/** Parser directives come first; `# escape=` changes the escape and continuation character, which this reader does not. */
function checkEscapeDirective(text, file) {
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  for (const [i, line] of lines.entries()) {
    const directive = /^#\s*([A-Za-z]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (!directive) return;
    if (directive[1].toLowerCase() === "escape" && directive[2] !== "\\") throw new DockerfileEnvError(file, i + 1, `# escape=${directive[2]} is not supported (only \\)`);
  }
}

/** The instructions: keyword upper-cased, arguments with continuation lines joined, 1-based first line. */
function* instructions(text) {
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  const isComment = (l) => /^\s*#/.test(l);
  const continues = (l) => /\\[ \t]*$/.test(l);
  const withoutContinuation = (l) => l.replace(/\\[ \t]*$/, "");
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let line = lines[i].trimStart();
    if (isComment(line) || line === "") continue;
    let more = continues(line);
    line = withoutContinuation(line);
    while (more && i + 1 < lines.length) {
      const next = lines[++i];
      if (isComment(next) || next.trim() === "") continue;
      more = continues(next);
      line += withoutContinuation(next);
    }
    const m = /^(\S+)\s*([\s\S]*)$/.exec(line.trim());
    if (m) yield { keyword: m[1].toUpperCase(), args: m[2], line: start };
  }
}

/** ENV's arguments as [key, value] pairs, in order. */
function envPairs(args, fail) {
  const words = rawWords(args);
  if (words.length === 0) throw fail("ENV needs KEY=value");
  // BuildKit's rule: the legacy form `ENV KEY value with spaces` is the one whose first word has no `=`.
  if (!words[0].includes("=")) {
    const legacy = /^(\S+)\s+([\s\S]+)$/.exec(args);
    if (!legacy) throw fail(`ENV ${args}: needs a value (ENV KEY=value)`);
    return [envPair(legacy[1], legacy[2], fail)];
  }
  return words.map((word) => {
    const eq = word.indexOf("=");
    if (eq < 0) throw fail(`ENV: "${word}" is not KEY=value`);
    return envPair(word.slice(0, eq), word.slice(eq + 1), fail);
  });
}

/** A key as written (no quotes or escapes in keys) and its value evaluated. */
function envPair(key, rawValue, fail) {
  if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(key)) throw fail(`ENV key ${JSON.stringify(key)}: only letters, digits, _ . and - are supported`);
  return [key, shellWord(rawValue, (message) => fail(`ENV ${key}=${rawValue}: ${message}`))];
}

/** Splits on blanks outside quotes, keeping quotes and escapes in the words (BuildKit's parseWords). */
function rawWords(text) {
  const words = [];
  let word;
  let quote;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (!quote && /\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
      continue;
    }
    word = (word ?? "") + c;
    if (c === "\\" && quote !== "'") word += text[++i] ?? "";
    else if (!quote && (c === '"' || c === "'")) quote = c;
    else if (c === quote) quote = undefined;
  }
  if (word !== undefined) words.push(word);
  return words;
}

/** One word with its quotes and escapes removed, as BuildKit's shell lexer evaluates ENV values. */
function shellWord(raw, fail) {
  const substitution = () => fail("$ substitution is not supported (write the value out, or escape the $ as \\$)");
  let out = "";
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c === "$") throw substitution();
    if (c === "\\") {
      out += raw[++i] ?? "";
    } else if (c === "'") {
      const end = raw.indexOf("'", i + 1);
      if (end < 0) throw fail("unterminated single quote");
      out += raw.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      for (i++; raw[i] !== '"'; i++) {
        if (i >= raw.length) throw fail("unterminated double quote");
        if (raw[i] === "$") throw substitution();
        if (raw[i] === "\\" && ['"', "$", "\\"].includes(raw[i + 1])) i++;
        out += raw[i];
      }
    } else {
      out += c;
    }
  }
  return out;
}

function main() {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { get: { type: "string" }, "base-env": { type: "string", multiple: true } } });
  if (positionals.length !== 1) throw new Error("usage: node scripts/dockerfile-env.mjs [--base-env KEY=VALUE]... [--get KEY] DOCKERFILE");
  const baseEnv = Object.fromEntries(
    (values["base-env"] ?? []).map((kv) => {
      const eq = kv.indexOf("=");
      if (eq <= 0) throw new Error(`--base-env ${kv}: expected KEY=VALUE`);
      return [kv.slice(0, eq), kv.slice(eq + 1)];
    }),
  );
  const env = dockerfileEnv(positionals[0], { baseEnv });
  if (values.get === undefined) {
    for (const [key, value] of Object.entries(env)) process.stdout.write(`${key}=${value}\n`);
  } else if (Object.hasOwn(env, values.get)) {
    process.stdout.write(`${env[values.get]}\n`);
  } else {
    throw new Error(`${positionals[0]}: its final stage sets no ENV ${values.get}`);
  }
}

// Run as a program, not when imported; the file-name check keeps the CLI out of a program a bundler inlined this
// module into (NMI's bench), whose import.meta is that program's.
if (import.meta.filename && basename(import.meta.filename) === "dockerfile-env.mjs" && process.argv[1] && realpathSync(process.argv[1]) === import.meta.filename) {
  try {
    main();
  } catch (error) {
    process.stderr.write(`dockerfile-env: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
}
