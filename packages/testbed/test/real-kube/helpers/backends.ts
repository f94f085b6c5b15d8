import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeApiServer } from "../../../src/kube/kube-api-server";
import { renderKubeconfig } from "../../../src/kube/kubeconfig";
import { kubectlRunner, type KubectlResult } from "../../../src/kube/kubectl";
import { RealKubeApiServer } from "../../../src/real-kube/real-kube-api-server";
import type { TestbedCa } from "../../../src/tls/testbed-ca";
import { azureIdentityCrd } from "../../kube/helpers/crd";

export const ADMIN = "testbed-admin";
/** A service account with no RBAC rules: the real authorizer refuses it everything, the emulator nothing. */
export const NOBODY = "system:serviceaccount:default:nobody";

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  text: string;
}

/** One Kubernetes backend as the probes see it: raw HTTP, kubectl and a kubeconfig, all as the admin by default. */
export interface Backend {
  name: "emulator" | "real";
  url: string;
  kubeconfigText: string;
  http(method: string, path: string, options?: { body?: unknown; raw?: string | Buffer; contentType?: string; token?: string | null; headers?: Record<string, string> }): Promise<HttpAnswer>;
  kubectl(...args: string[]): Promise<KubectlResult>;
  file(name: string, text: string): Promise<string>;
  /** Makes resourceVersions older than now unusable for watches (emulator: drop its history; real: compact etcd). */
  forgetHistory(): Promise<void>;
  close(): Promise<void>;
}

function rawHttp(url: string, caPem: string, adminToken: string) {
  return (method: string, path: string, options: { body?: unknown; raw?: string | Buffer; contentType?: string; token?: string | null; headers?: Record<string, string> } = {}): Promise<HttpAnswer> => {
    const payload = options.raw !== undefined ? Buffer.from(options.raw) : options.body !== undefined ? Buffer.from(JSON.stringify(options.body)) : undefined;
    const headers: Record<string, string> = { accept: "application/json", ...options.headers };
    const token = options.token === undefined ? adminToken : options.token;
    if (token !== null) headers["authorization"] = `Bearer ${token}`;
    if (payload) {
      headers["content-type"] = options.contentType ?? "application/json";
      headers["content-length"] = String(payload.length);
    }
    return new Promise((resolve, reject) => {
      const req = request(new URL(path, url), { method, headers, ca: caPem, timeout: 20_000 }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => {
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // not JSON (a watch stream, a plain-text answer): probes read `text`
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text });
        });
        res.on("error", reject);
      });
      req.on("timeout", () => req.destroy(new Error(`${method} ${path}: no answer within 20 s`)));
      req.on("error", reject);
      req.end(payload);
    });
  };
}

async function withDir(kubectl: string | undefined, kubeconfigText: string) {
  const dir = await mkdtemp(join(tmpdir(), "real-kube-probe-"));
  await writeFile(join(dir, "kubeconfig"), kubeconfigText, { mode: 0o600 });
  const run = kubectl ? kubectlRunner(kubectl, join(dir, "kubeconfig"), join(dir, "cache")) : undefined;
  return {
    dir,
    kubectl: (...args: string[]): Promise<KubectlResult> => (run ? run(...args) : Promise.reject(new Error("kubectl not found: run scripts/ensure-kubectl.sh"))),
    file: async (name: string, text: string) => {
      const path = join(dir, name);
      await writeFile(path, text);
      return path;
    },
  };
}

/** Waits until the CRD is Established and its resource is served (the real server takes a moment). */
async function installCrd(http: Backend["http"]): Promise<void> {
  const crd = azureIdentityCrd({ printerColumns: true });
  const created = await http("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", { body: crd });
  if (created.status !== 201) throw new Error(`CRD create answered ${created.status}: ${created.text}`);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const list = await http("GET", "/apis/aadpodidentity.k8s.io/v1/namespaces/default/azureidentities");
    if (list.status === 200) return;
    if (Date.now() > deadline) throw new Error(`CRD not served within 30 s: ${list.status} ${list.text}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startEmulatorBackend(ca: TestbedCa, kubectl: string | undefined, version: string): Promise<Backend> {
  const server = new KubeApiServer({ tls: ca, tokens: { "admin-token": ADMIN, "nobody-token": NOBODY }, kubernetesVersion: version });
  await server.start();
  const kubeconfigText = renderKubeconfig({ server: server.url, caPem: ca.certPem, token: "admin-token" });
  const d = await withDir(kubectl, kubeconfigText);
  const http = rawHttp(server.url, ca.certPem, "admin-token");
  const backend: Backend = {
    name: "emulator",
    url: server.url,
    kubeconfigText,
    http: (m, p, o) => http(m, p, o?.token === "nobody" ? { ...o, token: "nobody-token" } : o),
    kubectl: d.kubectl,
    file: d.file,
    forgetHistory: async () => server.compactHistory(),
    close: async () => {
      await server.close();
      await rm(d.dir, { recursive: true, force: true });
    },
  };
  try {
    await installCrd(backend.http);
  } catch (err) {
    await backend.close();
    throw err;
  }
  return backend;
}

export async function startRealBackend(ca: TestbedCa, kubectl: string | undefined): Promise<Backend> {
  // Without the watch cache a watch from a compacted resourceVersion reaches etcd, which answers 410 as the emulator
  // does past its history; the probes' other requests behave the same with or without it.
  const server = new RealKubeApiServer({ tls: ca, tokens: { "nobody-token": NOBODY }, watchCache: false });
  await server.start();
  const kubeconfigText = server.kubeconfig();
  const d = await withDir(kubectl, kubeconfigText);
  const http = rawHttp(server.url, ca.certPem, server.adminToken);
  const backend: Backend = {
    name: "real",
    url: server.url,
    kubeconfigText,
    http: (m, p, o) => http(m, p, o?.token === "nobody" ? { ...o, token: "nobody-token" } : o),
    kubectl: d.kubectl,
    file: d.file,
    forgetHistory: () => server.compact(),
    close: async () => {
      await server.close();
      await rm(d.dir, { recursive: true, force: true });
    },
  };
  try {
    await installCrd(backend.http);
  } catch (err) {
    await backend.close();
    throw err;
  }
  return backend;
}
