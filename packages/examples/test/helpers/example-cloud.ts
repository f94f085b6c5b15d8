import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AzureCloud, type ComputeResource, type ImdsServer, type UserAssignedIdentity } from "@podidentity/testbed";
import { TEST_BUILD_DIR } from "./build-apps";

export type ExampleApp = "keyvault-secret" | "blob-storage" | "sql-query";

export interface AppResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * An emulated Azure for one node: a scale set whose identity block holds `identity` (assigned through the
 * compute state, effective at once), the node's IMDS, and the CA written to a file for NODE_EXTRA_CA_CERTS.
 */
export class ExampleCloud {
  private constructor(
    readonly cloud: AzureCloud,
    readonly scaleSet: ComputeResource,
    readonly imds: ImdsServer,
    readonly identity: UserAssignedIdentity,
    readonly dir: string,
    readonly caPath: string,
  ) {}

  static async start(): Promise<ExampleCloud> {
    const cloud = await AzureCloud.create();
    const scaleSet = cloud.addScaleSet("aks-nodepool1-vmss");
    const identity = cloud.createUserAssignedIdentity("example-app");
    scaleSet.applyIdentityPatch({ type: "UserAssigned", userAssignedIdentities: { [identity.id]: {} } }, cloud.registry, { effectiveAtMs: 0 });
    const imds = await cloud.startImds("aks-nodepool1-vmss000000", scaleSet);
    const dir = await mkdtemp(join(tmpdir(), "podidentity-examples-"));
    const caPath = join(dir, "ca.pem");
    await writeFile(caPath, cloud.ca.certPem);
    return new ExampleCloud(cloud, scaleSet, imds, identity, dir, caPath);
  }

  /** Runs `node <app>.js` as a pod would: only the env an app gets, the node's IMDS as the endpoint. */
  runApp(app: ExampleApp, env: Record<string, string>): Promise<AppResult> {
    return this.startApp(app, env).result;
  }

  /** Like {@link runApp}, with the child and a way to wait for its output while it runs. */
  startApp(app: ExampleApp, env: Record<string, string>): RunningApp {
    return startProgram(join(TEST_BUILD_DIR, `${app}.js`), { AZURE_POD_IDENTITY_AUTHORITY_HOST: this.imds.url, NODE_EXTRA_CA_CERTS: this.caPath, ...env });
  }

  async close(): Promise<void> {
    await this.cloud.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}

export interface RunningApp {
  child: ChildProcess;
  result: Promise<AppResult>;
  /** Resolves once stdout matches `pattern` `count` times (rejects if the program ends first). */
  waitForOutput(pattern: RegExp, count?: number): Promise<void>;
}

/** Starts `node <script>` with only PATH and `env` in its environment. */
export function startProgram(script: string, env: Record<string, string>): RunningApp {
  const child = spawn(process.execPath, [script], { env: { PATH: process.env["PATH"] ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  const waiters: Array<() => void> = [];
  child.stdout.on("data", (c: Buffer) => {
    stdout += c.toString("utf8");
    for (const w of [...waiters]) w();
  });
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
  const result = new Promise<AppResult>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  const waitForOutput = (pattern: RegExp, count = 1) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if ((stdout.match(new RegExp(pattern.source, pattern.flags.includes("g") ? pattern.flags : `${pattern.flags}g`)) ?? []).length >= count) {
          waiters.splice(waiters.indexOf(check), 1);
          resolve();
        }
      };
      waiters.push(check);
      check();
      void result.then(() => reject(new Error(`the program ended before printing ${pattern} ${count} time(s):\n${stdout}\n${stderr}`)));
    });
  return { child, result, waitForOutput };
}
