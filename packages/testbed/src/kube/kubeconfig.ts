/**
 * kubeconfig files pointing at the emulated API server, for kubectl and @kubernetes/client-node. Written as
 * JSON, which is valid YAML and what both read.
 */
import { writeFile } from "node:fs/promises";

export interface KubeconfigOptions {
  server: string;
  /** PEM of the CA that signed the server certificate (https only). */
  caPem?: string;
  token?: string;
  namespace?: string;
  /** Names used for the cluster, user and context entries. */
  name?: string;
}

export function renderKubeconfig(opts: KubeconfigOptions): string {
  const name = opts.name ?? "testbed";
  const cluster: Record<string, unknown> = { server: opts.server };
  if (opts.caPem) cluster["certificate-authority-data"] = Buffer.from(opts.caPem).toString("base64");
  const user: Record<string, unknown> = {};
  if (opts.token) user["token"] = opts.token;
  const context: Record<string, unknown> = { cluster: name, user: name };
  if (opts.namespace) context["namespace"] = opts.namespace;
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name, cluster }],
    users: [{ name, user }],
    contexts: [{ name, context }],
    "current-context": name,
    preferences: {},
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

export async function writeKubeconfigFile(path: string, opts: KubeconfigOptions): Promise<void> {
  await writeFile(path, renderKubeconfig(opts), { mode: 0o600 });
}
