import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Command, InvalidArgumentError } from "commander";
import { APP_ENV_FILE, AzureTestbed } from "./azure-testbed";

/** Where the CLI writes and whom it signals; injectable so tests run it in-process. */
export interface CliIo {
  stdout: (line: string) => void;
  stderr: (line: string) => void;
  /** Resolves when the process is asked to stop (SIGINT/SIGTERM in the real CLI). */
  waitForStop: () => Promise<string>;
  /** Sends a signal to a PID; returns false when the process does not exist. */
  kill: (pid: number, signal: NodeJS.Signals | 0) => boolean;
  sleep: (ms: number) => Promise<void>;
  pid: number;
}

export const DEFAULT_CLI_OPTIONS = {
  dir: ".testbed",
  downTimeoutMs: 20_000,
  /** How long `env` waits for `up` (started just before, in the background) to be ready. */
  envWaitMs: 30_000,
} as const;

/** Key Vault's rules for secret names; values are bounded by the emulator's 25 KB limit. */
const SECRET_NAME = /^[0-9a-zA-Z-]{1,127}$/;
const MAX_SECRET_VALUE_BYTES = 25 * 1024;
const MAX_APP_ITEMS = 50;

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/**
 * `--secret NAME=VALUE` → [name, value]. Checked in the action, not by commander: commander's own error message
 * would repeat the argument, and with it the secret value.
 */
export function parseSecretArgument(argument: string): [string, string] {
  const eq = argument.indexOf("=");
  const name = eq === -1 ? argument : argument.slice(0, eq);
  const shownName = JSON.stringify(name.slice(0, 130));
  if (eq === -1) throw new InvalidArgumentError(`--secret ${shownName}: expected NAME=VALUE (e.g. --secret db-password=s3cret)`);
  if (!SECRET_NAME.test(name)) throw new InvalidArgumentError(`--secret ${shownName}: a Key Vault secret name is 1-127 letters, digits and '-'`);
  const value = argument.slice(eq + 1);
  if (value.length === 0) throw new InvalidArgumentError(`--secret ${shownName}: the value is empty; give NAME=VALUE`);
  if (Buffer.byteLength(value) > MAX_SECRET_VALUE_BYTES) throw new InvalidArgumentError(`--secret ${shownName}: the value is larger than Key Vault's 25 KB limit`);
  return [name, value];
}

function shellQuote(value: string): string {
  return /^[A-Za-z0-9_./:,@%+=-]*$/.test(value) ? value : `'${value.replace(/'/g, "'\\''")}'`;
}

/** `export KEY=value` lines a POSIX shell evaluates. */
function exportLines(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => `export ${k}=${shellQuote(v)}`);
}

function parseEnvFile(text: string): Record<string, string> {
  return Object.fromEntries(text.split("\n").filter((l) => l.includes("=")).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535) throw new InvalidArgumentError("must be a port number 0-65535");
  return n;
}

function count(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 100) throw new InvalidArgumentError("must be an integer 1-100");
  return n;
}

function milliseconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError("must be a number of milliseconds >= 0");
  return n;
}

/** The `podidentity-testbed` program: `up` runs the Azure emulators until stopped, `down` stops a running one. */
export function createCli(io: CliIo): Command {
  const program = new Command("podidentity-testbed")
    .description("Local Azure emulators (ARM, Entra ID, IMDS, Key Vault, Azurite) for podidentity's tests and demo")
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout(s.trimEnd()), writeErr: (s) => io.stderr(s.trimEnd()) });

  program
    .command("up")
    .description("start the emulators, write the CA, env file and endpoints into --dir, and run until SIGINT/SIGTERM")
    .option("--dir <dir>", "folder for ca.pem, testbed.env, testbed.json and the pid file", DEFAULT_CLI_OPTIONS.dir)
    .option("--host <address>", "address every server binds", "127.0.0.1")
    .option("--arm-port <port>", "ARM port (0: any free port)", port, 0)
    .option("--entra-port <port>", "Entra ID port", port, 0)
    .option("--keyvault-port <port>", "Key Vault port", port, 0)
    .option("--imds-base-port <port>", "IMDS of node i listens on this + i (0: any free ports)", port, 0)
    .option("--nodes <count>", "number of scale-set nodes, each with its IMDS", count, 2)
    .option("--vault <name>", "Key Vault name", "testbed-kv")
    .option("--operation-duration-ms <ms>", "how long a VM/VMSS update stays InProgress", milliseconds)
    .option("--propagation-delay-ms <ms>", "delay after an update before IMDS knows the identity", milliseconds)
    .option("--azurite", "also start the Azurite blob service (HTTPS, OAuth)", false)
    .option("--proxy-port <port>", "port of the HTTPS proxy that maps the real Azure host names to the emulators (0: any free port)", port, 0)
    .option("--identity <name>", "a user-assigned identity for your app, assigned so that IMDS hands out its tokens (repeatable; the first is AZURE_CLIENT_ID)", collect, [])
    .option("--secret <name=value>", "a Key Vault secret every --identity may get and list (repeatable)", collect, [])
    .action(async (opts: { dir: string; host: string; armPort: number; entraPort: number; keyvaultPort: number; imdsBasePort: number; nodes: number; vault: string; operationDurationMs?: number; propagationDelayMs?: number; azurite: boolean; proxyPort: number; identity: string[]; secret: string[] }) => {
      const dir = resolve(opts.dir);
      // Everything is checked before anything starts.
      const secrets = opts.secret.map(parseSecretArgument);
      if (secrets.length > 0 && opts.identity.length === 0) throw new InvalidArgumentError("--secret needs at least one --identity NAME that may read it");
      if (opts.identity.length > MAX_APP_ITEMS || secrets.length > MAX_APP_ITEMS) throw new InvalidArgumentError(`at most ${MAX_APP_ITEMS} --identity and ${MAX_APP_ITEMS} --secret`);
      for (const name of opts.identity) {
        if (!/^[A-Za-z0-9][A-Za-z0-9_-]{2,127}$/.test(name)) throw new InvalidArgumentError(`--identity ${JSON.stringify(name.slice(0, 130))}: an identity name is 3-128 letters, digits, '-' or '_', starting with a letter or digit`);
      }
      if (new Set(opts.identity.map((n) => n.toLowerCase())).size !== opts.identity.length) throw new InvalidArgumentError("--identity: the same name was given twice");
      // A stale app.env would tell `env` that this run is ready before it is.
      await rm(join(dir, APP_ENV_FILE), { force: true });
      const testbed = await AzureTestbed.start({
        host: opts.host,
        armPort: opts.armPort,
        entraPort: opts.entraPort,
        keyVaultPort: opts.keyvaultPort,
        imdsBasePort: opts.imdsBasePort,
        nodeCount: opts.nodes,
        vaultName: opts.vault,
        azurite: opts.azurite,
        operationDurationMs: opts.operationDurationMs,
        propagationDelayMs: opts.propagationDelayMs,
        proxyPort: opts.proxyPort,
      });
      const pidPath = join(dir, "testbed.pid");
      try {
        for (const name of opts.identity) testbed.addAppIdentity(name);
        for (const [name, value] of secrets) testbed.addAppSecret(name, value);
        await mkdir(dir, { recursive: true });
        await writeFile(pidPath, `${io.pid}\n`);
        const files = await testbed.writeFiles(dir);
        const e = testbed.endpoints();
        io.stdout(`tenant        ${e.tenantId}`);
        io.stdout(`subscription  ${e.subscriptionId} (resource group ${e.resourceGroup})`);
        io.stdout(`ARM           ${e.arm}`);
        io.stdout(`Entra ID      ${e.entra}`);
        io.stdout(`Key Vault     ${e.keyVault}`);
        for (const [node, url] of Object.entries(e.imds)) io.stdout(`IMDS          ${url}  (node ${node})`);
        if (e.blob) io.stdout(`Blob          ${e.blob}`);
        io.stdout(`CA            ${files.caPath}`);
        io.stdout(`env file      ${files.envPath}`);
        if (e.proxy) io.stdout(`proxy         ${e.proxy}  (${testbed.proxy!.hostNames.map((h) => `${h}:443`).join(", ")} → the emulators; nothing else)`);
        for (const [i, id] of e.identities.entries()) io.stdout(`identity      ${id.name}: client ID ${id.clientId}, object ID ${id.principalId}${i === 0 ? " (AZURE_CLIENT_ID)" : ""}`);
        for (const [name] of secrets) io.stdout(`secret        ${e.keyVaultRealUrl}/secrets/${name} (get, list: ${opts.identity.join(", ")})`);
        if (files.appEnvPath) {
          io.stdout(`app env       ${files.appEnvPath}  (or: eval "$(podidentity-testbed env --dir ${shellQuote(opts.dir)})")`);
          for (const line of exportLines(testbed.appEnvironment(files.caPath))) io.stdout(`  ${line}`);
        }
        io.stdout("ready; stop with Ctrl-C or `podidentity-testbed down`");
        const signal = await io.waitForStop();
        io.stdout(`${signal}: stopping`);
      } finally {
        await testbed.close();
        await rm(pidPath, { force: true });
        await rm(join(dir, APP_ENV_FILE), { force: true });
      }
    });

  program
    .command("env")
    .description("wait until `up` in --dir is ready, then print the app's environment as `export` lines: eval \"$(podidentity-testbed env)\"")
    .option("--dir <dir>", "folder given to `up`", DEFAULT_CLI_OPTIONS.dir)
    .option("--wait-ms <ms>", "how long to wait for `up` to be ready", milliseconds, DEFAULT_CLI_OPTIONS.envWaitMs)
    .action(async (opts: { dir: string; waitMs: number }) => {
      const dir = resolve(opts.dir);
      const appEnvPath = join(dir, APP_ENV_FILE);
      const deadline = Date.now() + opts.waitMs;
      for (;;) {
        const pid = Number((await readFile(join(dir, "testbed.pid"), "utf8").catch(() => "")).trim());
        if (pid > 0 && !io.kill(pid, 0)) throw new Error(`the testbed (pid ${pid}) is not running; start it with \`podidentity-testbed up --dir ${opts.dir}\``);
        const text = await readFile(appEnvPath, "utf8").catch(() => undefined);
        if (text !== undefined) {
          for (const line of exportLines(parseEnvFile(text))) io.stdout(line);
          return;
        }
        if (Date.now() > deadline) throw new Error(`no testbed became ready in ${opts.dir} within ${opts.waitMs} ms: ${appEnvPath} does not exist; start one with \`podidentity-testbed up --dir ${opts.dir} &\``);
        await io.sleep(100);
      }
    });

  program
    .command("down")
    .description("stop the testbed started by `up` in --dir")
    .option("--dir <dir>", "folder given to `up`", DEFAULT_CLI_OPTIONS.dir)
    .action(async (opts: { dir: string }) => {
      const pidPath = join(resolve(opts.dir), "testbed.pid");
      let pid: number;
      try {
        pid = Number((await readFile(pidPath, "utf8")).trim());
      } catch {
        throw new Error(`no running testbed: ${pidPath} does not exist`);
      }
      if (!Number.isInteger(pid) || pid <= 0) throw new Error(`${pidPath} does not hold a PID`);
      if (!io.kill(pid, "SIGTERM")) {
        // The process is gone (crashed or killed): the pid file is stale.
        await rm(pidPath, { force: true });
        io.stdout(`testbed (pid ${pid}) was not running; removed the stale pid file`);
        return;
      }
      const deadline = Date.now() + DEFAULT_CLI_OPTIONS.downTimeoutMs;
      // Stopped once the process is gone, or once `up` has removed its pid file after closing everything: a process
      // that has exited but was not reaped yet (e.g. `up &` in a shell that exec'd this command) still answers kill 0.
      const pidFileGone = async (): Promise<boolean> => (await readFile(pidPath, "utf8").catch(() => undefined)) === undefined;
      while (io.kill(pid, 0) && !(await pidFileGone())) {
        if (Date.now() > deadline) throw new Error(`testbed (pid ${pid}) did not stop within ${DEFAULT_CLI_OPTIONS.downTimeoutMs} ms`);
        await io.sleep(100);
      }
      io.stdout(`testbed (pid ${pid}) stopped`);
    });

  return program;
}
