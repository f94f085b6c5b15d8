import { execFile } from "node:child_process";
import { readFile, stat } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import type { Clock } from "./clock";
import { systemClock } from "./clock";
import { ExecCredentialError, KubeConfigError } from "./errors";

/** What one request authenticates with: a bearer token and/or a client certificate. */
export interface Credentials {
  token?: string;
  certPem?: string;
  keyPem?: string;
}

/** Where a client's credentials come from; asked before every request, so rotation needs no restart. */
export interface CredentialSource {
  get(): Promise<Credentials>;
  /**
   * The server answered 401 to what `get()` returned. True when the next `get()` may return something else (the
   * client then retries once); false for fixed credentials.
   */
  invalidate(): boolean;
}

/** A token or client certificate written in the kubeconfig itself. */
export class StaticCredentials implements CredentialSource {
  readonly #credentials: Credentials;

  constructor(credentials: Credentials = {}) {
    this.#credentials = credentials;
  }

  async get(): Promise<Credentials> {
    return this.#credentials;
  }

  invalidate(): boolean {
    return false;
  }
}

/**
 * A bearer token in a file that is replaced while we run (projected service account tokens rotate hourly). The
 * file's mtime and size are checked before each request — a stat is microseconds — and the token re-read when
 * either changed, so a rotated token is used from the next request on (client-go re-reads once a minute).
 */
export class TokenFileCredentials implements CredentialSource {
  readonly path: string;
  #token: string | undefined;
  #stamp = "";

  constructor(path: string) {
    this.path = path;
  }

  async get(): Promise<Credentials> {
    let stamp: string;
    try {
      const s = await stat(this.path);
      stamp = `${s.mtimeMs}:${s.size}:${s.ino}`;
    } catch (cause) {
      throw new KubeConfigError(this.path, "tokenFile", `the token file cannot be read: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, { cause });
    }
    if (stamp !== this.#stamp || this.#token === undefined) {
      const text = (await readFile(this.path, "utf8")).trim();
      if (text === "") throw new KubeConfigError(this.path, "tokenFile", "the token file is empty");
      this.#token = text;
      this.#stamp = stamp;
    }
    return { token: this.#token };
  }

  invalidate(): boolean {
    // A 401 right after a rotation the mtime did not show (same second, same size): read the file again.
    this.#stamp = "";
    return true;
  }
}

/** A kubeconfig `users[].user.exec` entry. */
export interface ExecConfig {
  command: string;
  args?: string[];
  env?: Array<{ name: string; value: string }>;
  apiVersion: string;
  installHint?: string;
}

export const EXEC_CREDENTIAL_API_VERSIONS = ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"] as const;

export const DEFAULT_EXEC_CREDENTIAL_OPTIONS = {
  /** A plugin that has not answered after this long is killed (kubelogin's device flow is not run here). */
  timeoutMs: 60_000,
  /** An ExecCredential larger than this is refused. */
  maxOutputBytes: 1024 * 1024,
} as const;

export interface ExecCredentialOptions {
  /** Relative commands containing a `/` are resolved against this (the kubeconfig's directory), as client-go does. */
  baseDir?: string;
  /** The environment the plugin inherits; default process.env. */
  env?: NodeJS.ProcessEnv;
  clock?: Clock;
  timeoutMs?: number;
  maxOutputBytes?: number;
}

/**
 * An exec credential plugin (kubelogin on AKS, aws-iam-authenticator, gke-gcloud-auth-plugin): the command runs
 * with the kubeconfig's args and env plus KUBERNETES_EXEC_INFO, prints an ExecCredential
 * (client.authentication.k8s.io/v1 or v1beta1), and its token or client certificate is kept until its
 * expirationTimestamp (for the process lifetime when it has none). A 401 drops it so the next request runs the
 * plugin again. Concurrent requests share one run.
 */
export class ExecCredentials implements CredentialSource {
  readonly #config: ExecConfig;
  readonly #options: Required<Omit<ExecCredentialOptions, "baseDir" | "env">> & { baseDir: string | undefined; env: NodeJS.ProcessEnv };
  #cached: { credentials: Credentials; expiresAtMs: number } | undefined;
  #running: Promise<Credentials> | undefined;
  /** How many times the plugin ran (diagnostics and tests). */
  runs = 0;

  constructor(config: ExecConfig, options: ExecCredentialOptions = {}) {
    if (!(EXEC_CREDENTIAL_API_VERSIONS as readonly string[]).includes(config.apiVersion)) {
      throw new ExecCredentialError(config.command, `apiVersion ${JSON.stringify(config.apiVersion)} is not supported; use ${EXEC_CREDENTIAL_API_VERSIONS.join(" or ")}`);
    }
    this.#config = config;
    this.#options = {
      baseDir: options.baseDir,
      env: options.env ?? process.env,
      clock: options.clock ?? systemClock,
      timeoutMs: options.timeoutMs ?? DEFAULT_EXEC_CREDENTIAL_OPTIONS.timeoutMs,
      maxOutputBytes: options.maxOutputBytes ?? DEFAULT_EXEC_CREDENTIAL_OPTIONS.maxOutputBytes,
    };
  }

  async get(): Promise<Credentials> {
    const cached = this.#cached;
    if (cached !== undefined && this.#options.clock.now() < cached.expiresAtMs) return cached.credentials;
    this.#running ??= this.#run().finally(() => (this.#running = undefined));
    return this.#running;
  }

  invalidate(): boolean {
    this.#cached = undefined;
    return true;
  }

  async #run(): Promise<Credentials> {
    const { command, args = [], env = [], apiVersion } = this.#config;
    const file = command.includes("/") && !isAbsolute(command) && this.#options.baseDir !== undefined ? join(this.#options.baseDir, command) : command;
    const childEnv: NodeJS.ProcessEnv = { ...this.#options.env };
    for (const { name, value } of env) childEnv[name] = value;
    childEnv["KUBERNETES_EXEC_INFO"] = JSON.stringify({ apiVersion, kind: "ExecCredential", spec: { interactive: false } });
    this.runs++;
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(file, args, { env: childEnv, timeout: this.#options.timeoutMs, maxBuffer: this.#options.maxOutputBytes, encoding: "utf8" }, (error, out, err) => {
        if (error === null) return resolve(out);
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "ENOENT") {
          return reject(new ExecCredentialError(command, `not found${this.#config.installHint ? `; ${this.#config.installHint.trim()}` : ""}`, { cause: error }));
        }
        if (code === "ERR_CHILD_PROCESS_STDIO_MAXBUFFER") return reject(new ExecCredentialError(command, `printed more than ${this.#options.maxOutputBytes} bytes`, { cause: error }));
        if (error.killed) return reject(new ExecCredentialError(command, `did not finish within ${this.#options.timeoutMs} ms and was killed`, { cause: error }));
        // stderr is the plugin's own diagnostics (its stdout, which carries the credential, is never quoted).
        const detail = err.trim().split("\n")[0]?.slice(0, 200) ?? "";
        reject(new ExecCredentialError(command, `exited with ${String(code ?? error.signal)}${detail ? `: ${detail}` : ""}`, { cause: error }));
      });
    });
    const { credentials, expiresAtMs } = parseExecCredential(stdout, command, apiVersion);
    this.#cached = { credentials, expiresAtMs };
    return credentials;
  }
}

function parseExecCredential(stdout: string, command: string, apiVersion: string): { credentials: Credentials; expiresAtMs: number } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new ExecCredentialError(command, "printed something that is not JSON (an ExecCredential was expected)");
  }
  const doc = parsed as { kind?: unknown; apiVersion?: unknown; status?: Record<string, unknown> };
  if (doc.kind !== "ExecCredential") throw new ExecCredentialError(command, `printed kind ${JSON.stringify(doc.kind)}, not ExecCredential`);
  if (doc.apiVersion !== apiVersion) throw new ExecCredentialError(command, `printed apiVersion ${JSON.stringify(doc.apiVersion)}, but the kubeconfig asked for ${apiVersion}`);
  const status = doc.status ?? {};
  const credentials: Credentials = {};
  if (typeof status["token"] === "string" && status["token"] !== "") credentials.token = status["token"];
  const cert = status["clientCertificateData"];
  const key = status["clientKeyData"];
  if (typeof cert === "string" && typeof key === "string" && cert !== "" && key !== "") {
    credentials.certPem = cert;
    credentials.keyPem = key;
  } else if (cert !== undefined || key !== undefined) {
    throw new ExecCredentialError(command, "status.clientCertificateData and status.clientKeyData must both be set");
  }
  if (credentials.token === undefined && credentials.certPem === undefined) throw new ExecCredentialError(command, "status has neither token nor clientCertificateData");
  let expiresAtMs = Number.POSITIVE_INFINITY;
  if (status["expirationTimestamp"] !== undefined) {
    expiresAtMs = typeof status["expirationTimestamp"] === "string" ? Date.parse(status["expirationTimestamp"]) : Number.NaN;
    if (Number.isNaN(expiresAtMs)) throw new ExecCredentialError(command, "status.expirationTimestamp is not an RFC 3339 time");
  }
  return { credentials, expiresAtMs };
}
