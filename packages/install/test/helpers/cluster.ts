import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeApiServer, TestbedCa } from "@podidentity/testbed";
import { kubectlRunner, type KubectlResult } from "@podidentity/testbed";

export const ADMIN = "system:admin:podidentity-install-test";

/** The testbed's Kubernetes API over TLS (kubectl sends tokens only over TLS) and kubectl pointed at it. */
export interface TestCluster {
  server: KubeApiServer;
  kubectl: (...args: string[]) => Promise<KubectlResult>;
  /** Writes text to a file in the cluster's temp folder and returns its path (for `kubectl apply -f`). */
  file: (name: string, text: string) => Promise<string>;
  close: () => Promise<void>;
}

export async function startTestCluster(kubectlBinary: string): Promise<TestCluster> {
  const server = new KubeApiServer({ tls: await TestbedCa.create(), tokens: { "admin-token": ADMIN } });
  await server.start();
  const dir = await mkdtemp(join(tmpdir(), "install-kubectl-"));
  await server.writeKubeconfig(join(dir, "kubeconfig"), { user: ADMIN });
  return {
    server,
    kubectl: kubectlRunner(kubectlBinary, join(dir, "kubeconfig"), join(dir, "cache")),
    file: async (name, text) => {
      const path = join(dir, name);
      await writeFile(path, text);
      return path;
    },
    close: async () => {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
