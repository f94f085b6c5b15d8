import { KubeApiServer } from "../../../src/kube/kube-api-server";
import type { KubeApiServerOptions } from "../../../src/kube/kube-api-server";

export interface ApiResponse {
  status: number;
  headers: Headers;
  // Tests inspect arbitrary JSON shapes.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

/** A started server plus a tiny JSON client for raw protocol assertions. */
export async function startServer(options: KubeApiServerOptions = {}): Promise<KubeApiServer> {
  const server = new KubeApiServer(options);
  await server.start();
  return server;
}

export async function api(
  server: KubeApiServer,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<ApiResponse> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)["content-type"] ??= "application/json";
  }
  const res = await fetch(`${server.url}${path}`, init);
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // non-JSON bodies (health checks) stay text
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

export function configMap(name: string, data: Record<string, string> = {}, extra: Record<string, unknown> = {}) {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, ...extra }, data };
}

export function pod(name: string, extra: { labels?: Record<string, string>; nodeName?: string; namespace?: string } = {}) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, ...(extra.labels ? { labels: extra.labels } : {}), ...(extra.namespace ? { namespace: extra.namespace } : {}) },
    spec: { ...(extra.nodeName ? { nodeName: extra.nodeName } : {}), containers: [{ name: "app", image: "busybox:1.36" }] },
  };
}

/** Polls `check` until it returns a value other than undefined, or fails after the deadline. */
export async function eventually<T>(check: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
