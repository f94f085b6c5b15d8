import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { delimiter, dirname, join, resolve } from "node:path";
import { promisify } from "node:util";

const pexec = promisify(execFile);

/**
 * Where scripts/ensure-kubectl.sh unpacks Debian's kubernetes-client when no kubectl is installed: `.tooling/kubectl`
 * in the workspace root, found by walking up from `from` to the folder holding pnpm-workspace.yaml.
 */
export function toolingKubectlPath(from: string = process.cwd()): string | undefined {
  for (let dir = resolve(from); ; dir = dirname(dir)) {
    if (existsSync(join(dir, "pnpm-workspace.yaml"))) return join(dir, ".tooling", "kubectl", "usr", "bin", "kubectl");
    if (dirname(dir) === dir) return undefined;
  }
}

/** kubectl to use: $KUBECTL, then PATH, then the unpacked tooling copy; undefined when none exists. */
export function findKubectl(): string | undefined {
  const fromEnv = process.env["KUBECTL"];
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : undefined;
  for (const dir of (process.env["PATH"] ?? "").split(delimiter)) {
    if (dir && existsSync(join(dir, "kubectl"))) return join(dir, "kubectl");
  }
  const tooling = toolingKubectlPath();
  return tooling !== undefined && existsSync(tooling) ? tooling : undefined;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs kubectl with a private kubeconfig and cache (never ~/.kube), asynchronously: the API server under test
 * usually lives in the calling process, so a synchronous child would deadlock it.
 */
export function kubectlRunner(binary: string, kubeconfig: string, cacheDir: string, timeoutMs = 60_000) {
  return async (...args: string[]): Promise<KubectlResult> => {
    try {
      const r = await pexec(binary, ["--kubeconfig", kubeconfig, "--cache-dir", cacheDir, ...args], {
        encoding: "utf8",
        timeout: timeoutMs,
        env: { PATH: process.env["PATH"] ?? "", HOME: cacheDir, KUBECONFIG: kubeconfig },
      });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === "number" ? e.code : 1, stdout: e.stdout ?? "", stderr: e.stderr ?? String(err) };
    }
  };
}
