import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { TlsMaterial } from "./http";

export const DEFAULT_AZURITE_OPTIONS = {
  host: "127.0.0.1",
  port: 0,
  startTimeoutMs: 60_000,
  stopTimeoutMs: 10_000,
  /** Azurite's built-in development account. */
  accountName: "devstoreaccount1",
} as const;

export interface AzuriteBlobOptions {
  /** Certificate and key Azurite serves (OAuth needs HTTPS). */
  tls: TlsMaterial;
  host?: string;
  /** 0 (default) lets Azurite pick a free port. */
  port?: number;
  /** Data folder; a temporary one (removed on stop) when omitted. */
  location?: string;
  /** Path to Azurite's `azurite-blob` entry script; resolved from the `azurite` package when omitted. */
  azuriteBlobScript?: string;
  startTimeoutMs?: number;
}

/** Error starting Azurite: it exited, or did not report listening in time. `output` is its console. */
export class AzuriteStartError extends Error {
  readonly output: string;

  constructor(message: string, output: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AzuriteStartError";
    this.output = output;
  }
}

/** Locates azurite-blob's script from the installed `azurite` package (works from ESM and CJS builds). */
export function resolveAzuriteBlobScript(): string {
  const require = createRequire(typeof __filename === "string" ? __filename : import.meta.url);
  return join(dirname(require.resolve("azurite/package.json")), "dist", "src", "blob", "main.js");
}

/**
 * The real Azurite blob service in a child process, over HTTPS with OAuth (`--oauth basic`),
 * telemetry off. Azurite checks a bearer token's claims but not its signature, so tests that care
 * about who issued a token verify it against the emulator's JWKS themselves.
 */
export class AzuriteBlob {
  readonly url: string;
  readonly accountUrl: string;
  readonly pid: number;
  readonly #child: ChildProcess;
  readonly #tempDir: string | undefined;
  #exited: Promise<void>;

  private constructor(child: ChildProcess, url: string, tempDir: string | undefined, exited: Promise<void>) {
    this.#child = child;
    this.pid = child.pid ?? -1;
    this.url = url;
    this.accountUrl = `${url}/${DEFAULT_AZURITE_OPTIONS.accountName}`;
    this.#tempDir = tempDir;
    this.#exited = exited;
  }

  static async start(options: AzuriteBlobOptions): Promise<AzuriteBlob> {
    const tempDir = options.location === undefined ? await mkdtemp(join(tmpdir(), "podidentity-azurite-")) : undefined;
    const location = options.location ?? tempDir!;
    await mkdir(location, { recursive: true });
    const certPath = join(location, "azurite-cert.pem");
    const keyPath = join(location, "azurite-key.pem");
    await writeFile(certPath, options.tls.certPem);
    await writeFile(keyPath, options.tls.keyPem, { mode: 0o600 });
    const args = [
      options.azuriteBlobScript ?? resolveAzuriteBlobScript(),
      "--blobHost", options.host ?? DEFAULT_AZURITE_OPTIONS.host,
      "--blobPort", String(options.port ?? DEFAULT_AZURITE_OPTIONS.port),
      "--location", location,
      "--cert", certPath,
      "--key", keyPath,
      "--oauth", "basic",
      "--disableTelemetry",
      "--skipApiVersionCheck",
    ];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    let output = "";
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new AzuriteStartError(`AzuriteBlob: no "listens on" line within ${options.startTimeoutMs ?? DEFAULT_AZURITE_OPTIONS.startTimeoutMs} ms`, output)),
          options.startTimeoutMs ?? DEFAULT_AZURITE_OPTIONS.startTimeoutMs,
        );
        const onData = (chunk: Buffer): void => {
          output += chunk.toString("utf8");
          const match = /successfully listens on (https?:\/\/\S+)/.exec(output);
          if (match) {
            clearTimeout(timer);
            resolve(match[1]!.replace(/\/$/, ""));
          }
        };
        child.stdout?.on("data", onData);
        child.stderr?.on("data", onData);
        child.once("error", (error) => {
          clearTimeout(timer);
          reject(new AzuriteStartError(`AzuriteBlob: could not spawn azurite-blob: ${error.message}`, output, { cause: error }));
        });
        child.once("exit", (code, signal) => {
          clearTimeout(timer);
          reject(new AzuriteStartError(`AzuriteBlob: azurite-blob exited (code ${code}, signal ${signal}) before listening`, output));
        });
      });
      if (!url.startsWith("https://")) throw new AzuriteStartError(`AzuriteBlob: expected HTTPS, Azurite reports ${url}`, output);
      return new AzuriteBlob(child, url, tempDir, exited);
    } catch (error) {
      child.kill("SIGKILL");
      await exited;
      if (tempDir) await rm(tempDir, { recursive: true, force: true });
      throw error;
    }
  }

  /** Stops Azurite by PID (SIGTERM, then SIGKILL after a grace period) and removes its temporary data. */
  async stop(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      this.#child.kill("SIGTERM");
      const timer = setTimeout(() => this.#child.kill("SIGKILL"), DEFAULT_AZURITE_OPTIONS.stopTimeoutMs);
      await this.#exited;
      clearTimeout(timer);
    }
    if (this.#tempDir) await rm(this.#tempDir, { recursive: true, force: true });
  }

  /** Same as {@link stop}, so a cloud can track it with its servers. */
  close(): Promise<void> {
    return this.stop();
  }
}
