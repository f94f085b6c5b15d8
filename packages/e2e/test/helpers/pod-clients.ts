// Clients run inside a pod's network namespace exactly as an app in that pod would: no endpoint override, the
// metadata address 169.254.169.254 (which the node's NMI intercepts), the real Azure host names.
import { join } from "node:path";
import type { TopologyPod } from "@podidentity/testbed";
import type { E2eCluster } from "../../src/e2e-cluster";

export const FIXTURES = join(import.meta.dirname, "..", "fixtures");

export interface ClientOutcome {
  ok: boolean;
  claims?: { aud: string; appid: string; oid: string; tid: string; xms_mirid?: string };
  expiresOn?: number;
  error?: string;
  code?: string;
  statusCode?: number;
  message?: string;
}

/** Runs one of test/fixtures/*-client.mjs with node in the pod; its one-line JSON outcome. */
export async function runNodeClient(cluster: E2eCluster, pod: TopologyPod, fixture: string, env: Record<string, string> = {}): Promise<ClientOutcome> {
  const r = await cluster.runInPod(pod, process.execPath, [join(FIXTURES, fixture)], { env, timeoutMs: 45_000 });
  const line = r.stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line) as ClientOutcome;
  } catch {
    throw new Error(`${fixture} in pod ${pod.key} printed no outcome (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  json: Record<string, unknown> | undefined;
}

/** `curl -si` in the pod (or node); status, lower-cased headers and body. */
export async function curlIn(
  run: (command: string, args: string[]) => Promise<{ code: number | null; stdout: string; stderr: string }>,
  url: string,
  headers: Record<string, string> = { Metadata: "true" },
): Promise<HttpAnswer> {
  const args = ["-si", "--max-time", "40", ...Object.entries(headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]), url];
  const r = await run("curl", args);
  if (r.code !== 0) throw new Error(`curl ${url} failed (exit ${r.code}): ${r.stderr}`);
  const split = r.stdout.indexOf("\r\n\r\n");
  const head = r.stdout.slice(0, split).split("\r\n");
  const body = r.stdout.slice(split + 4);
  const status = Number(head[0]?.split(" ")[1]);
  const h: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(":");
    if (i > 0) h[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(body) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { status, headers: h, body, json };
}

export const TOKEN_PATH = "/metadata/identity/oauth2/token?api-version=2018-02-01";
export const IMDS = "http://169.254.169.254";

/** The token URL a pod calls, for `resource` (and optional extra query). */
export function tokenUrl(resource = "https://vault.azure.net", extra = ""): string {
  return `${IMDS}${TOKEN_PATH}&resource=${encodeURIComponent(resource)}${extra}`;
}

export function curlInPod(cluster: E2eCluster, pod: TopologyPod, url: string, headers?: Record<string, string>): Promise<HttpAnswer> {
  return curlIn((c, a) => cluster.runInPod(pod, c, a, { timeoutMs: 45_000 }), url, headers);
}

/** The claims of a JWT access token (never the token itself). */
export function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as Record<string, unknown>;
}
