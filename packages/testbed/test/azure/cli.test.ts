import { spawn } from "node:child_process";
import { once } from "node:events";
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

describe("podidentity-testbed up --identity --secret, and env", () => {
  const fixture = join(import.meta.dirname, "..", "fixtures", "default-credential-secret.mjs");

  it("creates the identity and the secret with its access policy; an unchanged DefaultAzureCredential app reads it with only the printed env", async () => {
    const cli = { ...io(), pid: process.pid };
    const running = createCli(cli).parseAsync(["node", "podidentity-testbed", "up", "--dir", dir, "--nodes", "1", "--identity", "orders-api", "--identity", "audit", "--secret", "db-password=correct horse 'battery'"]);
    const envCli = { ...io(), pid: process.pid };
    await createCli(envCli).parseAsync(["node", "podidentity-testbed", "env", "--dir", dir]);
    await cli.ready;
    const exported = Object.fromEntries(envCli.lines.map((l) => /^export ([A-Z_a-z]+)=(.*)$/.exec(l)!).map((m) => [m[1]!, m[2]!]));
    expect(Object.keys(exported).sort()).toEqual(["AZURE_CLIENT_ID", "AZURE_POD_IDENTITY_AUTHORITY_HOST", "CURL_CA_BUNDLE", "HTTPS_PROXY", "NODE_EXTRA_CA_CERTS", "NO_PROXY", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "https_proxy", "no_proxy"]);
    const endpoints = JSON.parse(await readFile(join(dir, "testbed.json"), "utf8")) as { identities: { name: string; clientId: string }[]; proxy: string };
    expect(endpoints.identities.map((i) => i.name)).toEqual(["orders-api", "audit"]);
    expect(exported["AZURE_CLIENT_ID"]).toBe(endpoints.identities[0]!.clientId);
    expect(exported["HTTPS_PROXY"]).toBe(endpoints.proxy);
    expect(cli.lines).toContain("secret        https://testbed-kv.vault.azure.net/secrets/db-password (get, list: orders-api, audit)");
    expect(cli.lines.join("\n")).not.toContain("battery");

    const app = spawn(process.execPath, [fixture], { env: { PATH: process.env["PATH"], ...exported, VAULT_URL: "https://testbed-kv.vault.azure.net", SECRET_NAME: "db-password" }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    app.stdout.on("data", (d: Buffer) => (stdout += String(d)));
    const [code] = (await once(app, "close")) as [number];
    expect(JSON.parse(stdout), stdout).toEqual({ ok: true, name: "db-password", length: "correct horse 'battery'".length });
    expect(code).toBe(0);

    cli.stop("SIGTERM");
    await running;
    await expect(access(join(dir, "app.env"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("refuses a malformed, empty or unreadable --secret with a clear message that never repeats the value", async () => {
    const cases: [string[], string][] = [
      [["--identity", "app1", "--secret", "db-password"], '--secret "db-password": expected NAME=VALUE (e.g. --secret db-password=s3cret)'],
      [["--identity", "app1", "--secret", "db-password="], '--secret "db-password": the value is empty; give NAME=VALUE'],
      [["--identity", "app1", "--secret", "db_password=hunter2"], '--secret "db_password": a Key Vault secret name is 1-127 letters, digits and \'-\''],
      [["--identity", "app1", "--secret", "=hunter2"], '--secret "": a Key Vault secret name is 1-127 letters, digits and \'-\''],
      [["--secret", "db-password=hunter2"], "--secret needs at least one --identity NAME that may read it"],
      [["--identity", "a"], '--identity "a": an identity name is 3-128 letters, digits, \'-\' or \'_\', starting with a letter or digit'],
      [["--identity", "app1", "--identity", "APP1"], "--identity: the same name was given twice"],
    ];
    for (const [args, message] of cases) {
      const error = await createCli(io()).parseAsync(["node", "podidentity-testbed", "up", "--dir", dir, ...args]).then(() => undefined, (e: Error) => e);
      expect(error?.message, args.join(" ")).toBe(message);
      expect(error?.message).not.toContain("hunter2");
    }
    // nothing was started: no pid file
    await expect(access(join(dir, "testbed.pid"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("env fails with the command to run when no testbed is running there", async () => {
    await writeFile(join(dir, "testbed.pid"), "999999999\n");
    await expect(createCli(io()).parseAsync(["node", "podidentity-testbed", "env", "--dir", dir])).rejects.toThrow("the testbed (pid 999999999) is not running; start it with `podidentity-testbed up --dir " + dir + "`");
    await rm(join(dir, "testbed.pid"));
    await expect(createCli(io()).parseAsync(["node", "podidentity-testbed", "env", "--dir", dir, "--wait-ms", "0"])).rejects.toThrow(/no testbed became ready in .* within 0 ms/);
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
