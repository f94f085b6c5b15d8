import { readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Command, InvalidArgumentError } from "commander";
import { AzureTestbed } from "./azure-testbed";

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
} as const;

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
    .action(async (opts: { dir: string; host: string; armPort: number; entraPort: number; keyvaultPort: number; imdsBasePort: number; nodes: number; vault: string; operationDurationMs?: number; propagationDelayMs?: number; azurite: boolean }) => {
      const dir = resolve(opts.dir);
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
      });
      const pidPath = join(dir, "testbed.pid");
      try {
        const files = await testbed.writeFiles(dir);
        await writeFile(pidPath, `${io.pid}\n`);
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
        io.stdout("ready; stop with Ctrl-C or `podidentity-testbed down`");
        const signal = await io.waitForStop();
        io.stdout(`${signal}: stopping`);
      } finally {
        await testbed.close();
        await rm(pidPath, { force: true });
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
      while (io.kill(pid, 0)) {
        if (Date.now() > deadline) throw new Error(`testbed (pid ${pid}) did not stop within ${DEFAULT_CLI_OPTIONS.downTimeoutMs} ms`);
        await io.sleep(100);
      }
      io.stdout(`testbed (pid ${pid}) stopped`);
    });

  return program;
}
