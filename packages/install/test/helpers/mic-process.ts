import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { resolve } from "node:path";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import { renderManifests } from "../../src/index";

/** MIC's bundled entry point, as the Deployment runs it (turbo builds @podidentity/mic before this package's tests). */
export const MIC_MAIN = resolve(import.meta.dirname, "../../../mic/dist/main.js");

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

export async function until<T>(probe: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The container's args with `$(VAR)` expanded as the kubelet does, and overrides replacing flags of the same name. */
export function commandLine(args: readonly string[], env: Record<string, string>, overrides: Record<string, string>): string[] {
  const expanded = args.map((a) => a.replace(/\$\(([A-Z_]+)\)/g, (_, v: string) => env[v] ?? `$(${v})`));
  const kept = expanded.filter((a) => !(a.split("=")[0]! in overrides));
  return [...kept, ...Object.entries(overrides).map(([flag, value]) => `${flag}=${value}`)];
}

/** A MIC process started with the rendered Deployment's command line; its output is kept for failure messages. */
export interface MicProcess {
  child: ChildProcess;
  podName: string;
  output(): string;
  stop(): Promise<void>;
}

export async function startMicProcess(options: { namespace: string; podName: string; overrides: Record<string, string>; env?: Record<string, string> }): Promise<MicProcess> {
  const deployment = renderManifests().find((m) => m.kind === "Deployment") as IDeployment;
  const env = { MIC_POD_NAMESPACE: options.namespace, POD_NAME: options.podName };
  const args = commandLine(deployment.spec!.template.spec!.containers[0]!.args!, env, {
    "--http-probe-port": String(await freePort()),
    "--prometheus-port": String(await freePort()),
    ...options.overrides,
  });
  const child = spawn(process.execPath, [MIC_MAIN, ...args], {
    env: { PATH: process.env["PATH"] ?? "", ...env, LOG_LEVEL: "warn", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const keep = (d: Buffer): void => {
    // bounded: the last 64 KiB is enough to explain a failure
    output = (output + d.toString()).slice(-65_536);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  return {
    child,
    podName: options.podName,
    output: () => output,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
