import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { delimiter, join, resolve } from "node:path";
import { promisify } from "node:util";

const pexec = promisify(execFile);

/** Where scripts/ensure-kubectl.sh unpacks Debian's kubernetes-client when no kubectl is installed. */
export const TOOLING_KUBECTL = resolve(import.meta.dirname, "../../../../.tooling/kubectl/usr/bin/kubectl");

/** kubectl to use, found as the testbed's kubectl tests find it: $KUBECTL, then PATH, then the tooling copy. */
export function findKubectl(): string | undefined {
  const fromEnv = process.env["KUBECTL"];
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : undefined;
  for (const dir of (process.env["PATH"] ?? "").split(delimiter)) {
    if (dir && existsSync(join(dir, "kubectl"))) return join(dir, "kubectl");
  }
  return existsSync(TOOLING_KUBECTL) ? TOOLING_KUBECTL : undefined;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs kubectl with a private kubeconfig and cache (never ~/.kube), asynchronously: the server runs in this process. */
export function kubectlRunner(binary: string, kubeconfig: string, cacheDir: string) {
  return async (...args: string[]): Promise<KubectlResult> => {
    try {
      const r = await pexec(binary, ["--kubeconfig", kubeconfig, "--cache-dir", cacheDir, ...args], {
        encoding: "utf8",
        timeout: 60_000,
        env: { PATH: process.env["PATH"] ?? "", HOME: cacheDir, KUBECONFIG: kubeconfig },
      });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === "number" ? e.code : 1, stdout: e.stdout ?? "", stderr: e.stderr ?? String(err) };
    }
  };
}
