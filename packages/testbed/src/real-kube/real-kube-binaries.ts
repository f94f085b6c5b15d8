/**
 * Where the real kube-apiserver and etcd are: `$PODIDENTITY_KUBE_APISERVER` / `$PODIDENTITY_ETCD`, else the links
 * scripts/ensure-kube-apiserver.sh puts in `.tooling/real-kube/bin/` of the workspace (pointing into its cache
 * outside the clone, /var/cache/podidentity/real-kube by default).
 */
import { accessSync, constants, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

export interface RealKubeBinaries {
  kubeApiserver: string;
  etcd: string;
}

function workspaceRoot(from: string): string | undefined {
  for (let dir = resolve(from); ; dir = dirname(dir)) {
    if (existsSync(join(dir, "pnpm-workspace.yaml"))) return dir;
    if (dirname(dir) === dir) return undefined;
  }
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The binaries, or a sentence saying why they are missing and how to get them. `from` is where to start looking
 * for the workspace root (default: the current directory).
 */
export function findRealKubeBinaries(from: string = process.cwd()): RealKubeBinaries | { missing: string } {
  const root = workspaceRoot(from);
  const tooling = root ? join(root, ".tooling", "real-kube", "bin") : undefined;
  const pick = (env: string, name: string): string | undefined => {
    const fromEnv = process.env[env];
    if (fromEnv) return fromEnv;
    return tooling ? join(tooling, name) : undefined;
  };
  const kubeApiserver = pick("PODIDENTITY_KUBE_APISERVER", "kube-apiserver");
  const etcd = pick("PODIDENTITY_ETCD", "etcd");
  const absent = [kubeApiserver ?? "kube-apiserver", etcd ?? "etcd"].filter((p) => !executable(p));
  if (absent.length > 0 || !kubeApiserver || !etcd) {
    return {
      missing:
        `no real kube-apiserver/etcd (${absent.join(", ")} not executable): run scripts/ensure-kube-apiserver.sh ` +
        "(builds and caches them, about 10 min the first time), or set PODIDENTITY_KUBE_APISERVER and PODIDENTITY_ETCD",
    };
  }
  return { kubeApiserver, etcd };
}
