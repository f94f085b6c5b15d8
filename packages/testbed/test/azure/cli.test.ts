import { spawn } from "node:child_process";
import { access, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createCli, type CliIo } from "../../src/index";
import { call } from "../helpers/azure-clients";

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "testbed-cli-"));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function io(): CliIo & { lines: string[]; stop: (signal: string) => void; ready: Promise<void> } {
  const lines: string[] = [];
  let stop!: (signal: string) => void;
  const stopped = new Promise<string>((resolve) => (stop = resolve));
  let markReady!: () => void;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  return {
    lines,
    stop,
    ready,
    stdout: (line) => {
      lines.push(line);
      if (line.startsWith("ready;")) markReady();
    },
    stderr: (line) => lines.push(line),
    waitForStop: () => stopped,
    kill: (pid, signal) => {
      try {
        process.kill(pid, signal);
        return true;
      } catch {
        return false;
      }
    },
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    pid: 4242,
  };
}

function parseEnv(text: string): Record<string, string> {
  return Object.fromEntries(text.trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
}

describe("podidentity-testbed up", () => {
  it("starts the emulators, writes CA, env and pid files, serves until stopped, then cleans up", async () => {
    const cli = io();
    const running = createCli(cli).parseAsync(["node", "podidentity-testbed", "up", "--dir", dir, "--nodes", "2"]);
    await cli.ready;
    const env = parseEnv(await readFile(join(dir, "testbed.env"), "utf8"));
    expect(env["NODE_EXTRA_CA_CERTS"]).toBe(join(dir, "ca.pem"));
    expect(await readFile(join(dir, "ca.pem"), "utf8")).toContain("BEGIN CERTIFICATE");
    expect((await readFile(join(dir, "testbed.pid"), "utf8")).trim()).toBe("4242");
    expect(env["PODIDENTITY_TESTBED_IMDS_1"]).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(cli.lines.filter((l) => l.startsWith("IMDS"))).toHaveLength(2);

    const imds = await call(`${env["AZURE_POD_IDENTITY_AUTHORITY_HOST"]}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net`, { headers: { metadata: "true" } });
    expect(imds.body).toMatchObject({ error: "invalid_request", error_description: "Identity not found" });
    const endpoints = JSON.parse(await readFile(join(dir, "testbed.json"), "utf8")) as { mic: { clientId: string } };
    expect(endpoints.mic.clientId).toBe(env["PODIDENTITY_TESTBED_MIC_CLIENT_ID"]);

    cli.stop("SIGTERM");
    await running;
    await expect(access(join(dir, "testbed.pid"))).rejects.toMatchObject({ code: "ENOENT" });
    await expect(call(`${env["AZURE_POD_IDENTITY_AUTHORITY_HOST"]}/metadata/instance`)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    expect(cli.lines).toContain("SIGTERM: stopping");
  });

  it("rejects invalid options before starting anything", async () => {
    const cli = io();
    await expect(createCli(cli).parseAsync(["node", "podidentity-testbed", "up", "--arm-port", "70000"])).rejects.toMatchObject({ code: "commander.invalidArgument" });
  });
});

describe("podidentity-testbed down", () => {
  it("stops the process named in the pid file and waits until it has exited", async () => {
    const child = spawn(process.execPath, ["-e", "process.on('SIGTERM', () => process.exit(0)); setInterval(() => {}, 1000); console.log('up')"], { stdio: ["ignore", "pipe", "ignore"] });
    await new Promise((resolve) => child.stdout.once("data", resolve));
    const exited = new Promise((resolve) => child.once("exit", resolve));
    await writeFile(join(dir, "testbed.pid"), `${child.pid}\n`);
    const cli = io();
    await createCli(cli).parseAsync(["node", "podidentity-testbed", "down", "--dir", dir]);
    await exited;
    expect(cli.lines).toContain(`testbed (pid ${child.pid}) stopped`);
  });

  it("reports a missing pid file and removes a stale one", async () => {
    await expect(createCli(io()).parseAsync(["node", "podidentity-testbed", "down", "--dir", dir])).rejects.toThrow(/no running testbed/);
    const gone = spawn(process.execPath, ["-e", ""]);
    await new Promise((resolve) => gone.once("exit", resolve));
    await writeFile(join(dir, "testbed.pid"), `${gone.pid}\n`);
    const cli = io();
    await createCli(cli).parseAsync(["node", "podidentity-testbed", "down", "--dir", dir]);
    expect(cli.lines[0]).toContain("was not running");
    await expect(access(join(dir, "testbed.pid"))).rejects.toMatchObject({ code: "ENOENT" });
  });
});
