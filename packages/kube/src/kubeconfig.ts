import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, join } from "node:path";
import { parse as parseYaml } from "yaml";
import type { Clock } from "./clock";
import type { CredentialSource, ExecConfig } from "./credentials";
import { EXEC_CREDENTIAL_API_VERSIONS, ExecCredentials, StaticCredentials, TokenFileCredentials } from "./credentials";
import { KubeConfigError } from "./errors";

/** Where and how to reach one API server: what `loadKubeConfig` resolves a kubeconfig (or the pod's account) to. */
export interface KubeConfig {
  /** e.g. https://10.0.0.1:443 (plain http is allowed: local emulators use it). */
  server: string;
  /** The kubeconfig file it came from, or `in-cluster`. */
  source: string;
  caPem?: string;
  /** A client certificate written in the kubeconfig (exec plugins may supply one per request instead). */
  certPem?: string;
  keyPem?: string;
  insecureSkipTlsVerify: boolean;
  tlsServerName?: string;
  /** The context's namespace (in-cluster: the pod's). */
  namespace?: string;
  credentials: CredentialSource;
}

export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

export interface LoadKubeConfigOptions {
  /** A `--kubeconfig` flag; wins over everything else. */
  kubeconfigPath?: string;
  /** Default process.env: KUBECONFIG, KUBERNETES_SERVICE_HOST/PORT, HOME. */
  env?: NodeJS.ProcessEnv;
  /** Use this context instead of the file's current-context. */
  context?: string;
  /** Default os.homedir(). */
  homeDir?: string;
  /** Default /var/run/secrets/kubernetes.io/serviceaccount. */
  serviceAccountDir?: string;
  /** For exec credential expiry. */
  clock?: Clock;
}

/**
 * The API server to use, in client-go's order: the flag, then `$KUBECONFIG` (only the first file of a
 * `:`-separated list is read — no merging), then in-cluster (KUBERNETES_SERVICE_HOST and the service account's
 * token, ca.crt and namespace), then `~/.kube/config`. Throws KubeConfigError naming the file and field.
 */
export function loadKubeConfig(options: LoadKubeConfigOptions = {}): KubeConfig {
  const env = options.env ?? process.env;
  if (options.kubeconfigPath !== undefined && options.kubeconfigPath !== "") return readKubeConfigFile(options.kubeconfigPath, options);
  const fromEnv = env["KUBECONFIG"]?.split(":").find((p) => p !== "");
  if (fromEnv !== undefined) return readKubeConfigFile(fromEnv, options);
  if (env["KUBERNETES_SERVICE_HOST"]) return inClusterConfig(options);
  const home = join(options.homeDir ?? homedir(), ".kube", "config");
  if (!existsSync(home)) {
    throw new KubeConfigError(home, undefined, "no kubeconfig found: pass --kubeconfig, set KUBECONFIG, or run in a pod (KUBERNETES_SERVICE_HOST is not set)");
  }
  return readKubeConfigFile(home, options);
}

export function readKubeConfigFile(path: string, options: Omit<LoadKubeConfigOptions, "kubeconfigPath"> = {}): KubeConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    throw new KubeConfigError(path, undefined, `cannot be read: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, { cause });
  }
  return parseKubeConfig(text, { ...options, source: path, baseDir: dirname(path) });
}

/** The pod's own service account: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT with its token file. */
export function inClusterConfig(options: Pick<LoadKubeConfigOptions, "env" | "serviceAccountDir"> = {}): KubeConfig {
  const env = options.env ?? process.env;
  const dir = options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  const host = env["KUBERNETES_SERVICE_HOST"];
  const port = env["KUBERNETES_SERVICE_PORT"] || "443";
  if (!host) throw new KubeConfigError("in-cluster", "KUBERNETES_SERVICE_HOST", "is not set (not running in a pod); pass --kubeconfig");
  const caPath = join(dir, "ca.crt");
  let caPem: string;
  try {
    caPem = readFileSync(caPath, "utf8");
  } catch (cause) {
    throw new KubeConfigError("in-cluster", caPath, `cannot be read: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, { cause });
  }
  let namespace: string | undefined;
  try {
    namespace = readFileSync(join(dir, "namespace"), "utf8").trim() || undefined;
  } catch {
    namespace = undefined; // optional: only used as a default namespace
  }
  return {
    server: host.includes(":") ? `https://[${host}]:${port}` : `https://${host}:${port}`,
    source: "in-cluster",
    caPem,
    insecureSkipTlsVerify: false,
    ...(namespace !== undefined && { namespace }),
    credentials: new TokenFileCredentials(join(dir, "token")),
  };
}

interface Named<T> {
  name?: unknown;
  [key: string]: unknown;
  value?: T;
}

/** Kubeconfig text (YAML or JSON) → the chosen context's cluster and user. */
export function parseKubeConfig(
  text: string,
  options: { source: string; baseDir: string } & Pick<LoadKubeConfigOptions, "context" | "env" | "clock">,
): KubeConfig {
  const { source, baseDir } = options;
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (cause) {
    throw new KubeConfigError(source, undefined, `is not valid YAML: ${(cause as Error).message.split("\n")[0]}`, { cause });
  }
  if (!isRecord(doc)) throw new KubeConfigError(source, undefined, "is not a kubeconfig (expected a mapping with clusters, contexts and users)");
  const contexts = namedList(doc, "contexts", "context", source);
  const clusters = namedList(doc, "clusters", "cluster", source);
  const users = namedList(doc, "users", "user", source);
  const contextName = options.context ?? (typeof doc["current-context"] === "string" && doc["current-context"] !== "" ? doc["current-context"] : undefined);
  let context: Record<string, unknown> | undefined;
  if (contextName !== undefined) {
    context = contexts.get(contextName);
    if (context === undefined) throw new KubeConfigError(source, options.context !== undefined ? "context" : "current-context", `names context ${JSON.stringify(contextName)}, which is not in contexts`);
  } else if (contexts.size === 1) {
    context = [...contexts.values()][0];
  } else {
    throw new KubeConfigError(source, "current-context", contexts.size === 0 ? "is not set and there are no contexts" : "is not set and there are several contexts");
  }
  const ctx = context ?? {};
  const clusterName = typeof ctx["cluster"] === "string" ? ctx["cluster"] : undefined;
  const cluster = clusterName === undefined ? undefined : clusters.get(clusterName);
  if (cluster === undefined) throw new KubeConfigError(source, `contexts[${contextName ?? 0}].context.cluster`, `names cluster ${JSON.stringify(clusterName)}, which is not in clusters`);
  const at = `clusters[${clusterName}].cluster`;
  const server = cluster["server"];
  if (typeof server !== "string" || server === "") throw new KubeConfigError(source, `${at}.server`, "is missing");
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new KubeConfigError(source, `${at}.server`, `${JSON.stringify(server)} is not a URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new KubeConfigError(source, `${at}.server`, `must be an https:// (or http://) URL, got ${url.protocol}`);
  const userName = typeof ctx["user"] === "string" ? ctx["user"] : undefined;
  const user = userName === undefined ? {} : users.get(userName);
  if (user === undefined) throw new KubeConfigError(source, `contexts[${contextName ?? 0}].context.user`, `names user ${JSON.stringify(userName)}, which is not in users`);
  const uat = `users[${userName}].user`;

  const caPem = dataOrFile(cluster, "certificate-authority", `${at}`, source, baseDir);
  const certPem = dataOrFile(user, "client-certificate", uat, source, baseDir);
  const keyPem = dataOrFile(user, "client-key", uat, source, baseDir);
  if ((certPem === undefined) !== (keyPem === undefined)) throw new KubeConfigError(source, uat, "client-certificate and client-key must be given together");
  if (user["auth-provider"] !== undefined) {
    throw new KubeConfigError(source, `${uat}.auth-provider`, "is not supported (removed from client-go in 1.26); convert it to an exec plugin, e.g. `kubelogin convert-kubeconfig`");
  }

  let credentials: CredentialSource;
  if (user["exec"] !== undefined) {
    credentials = new ExecCredentials(execConfig(user["exec"], `${uat}.exec`, source), {
      baseDir,
      ...(options.env !== undefined && { env: options.env }),
      ...(options.clock !== undefined && { clock: options.clock }),
    });
  } else if (typeof user["token"] === "string" && user["token"] !== "") {
    credentials = new StaticCredentials({ token: user["token"] });
  } else if (typeof user["tokenFile"] === "string" && user["tokenFile"] !== "") {
    credentials = new TokenFileCredentials(resolvePath(user["tokenFile"], baseDir));
  } else if (typeof user["username"] === "string" && typeof user["password"] === "string") {
    throw new KubeConfigError(source, `${uat}.username`, "basic authentication is not supported (removed from kube-apiserver in 1.19)");
  } else {
    credentials = new StaticCredentials();
  }
  const namespace = typeof ctx["namespace"] === "string" && ctx["namespace"] !== "" ? ctx["namespace"] : undefined;
  const tlsServerName = typeof cluster["tls-server-name"] === "string" && cluster["tls-server-name"] !== "" ? cluster["tls-server-name"] : undefined;
  return {
    server: server.replace(/\/+$/, ""),
    source,
    ...(caPem !== undefined && { caPem }),
    ...(certPem !== undefined && { certPem }),
    ...(keyPem !== undefined && { keyPem }),
    insecureSkipTlsVerify: cluster["insecure-skip-tls-verify"] === true,
    ...(tlsServerName !== undefined && { tlsServerName }),
    ...(namespace !== undefined && { namespace }),
    credentials,
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function namedList(doc: Record<string, unknown>, key: string, inner: string, source: string): Map<string, Record<string, unknown>> {
  const list = doc[key] ?? [];
  if (!Array.isArray(list)) throw new KubeConfigError(source, key, "must be a list");
  const out = new Map<string, Record<string, unknown>>();
  list.forEach((entry: Named<unknown>, i) => {
    if (!isRecord(entry) || typeof entry.name !== "string") throw new KubeConfigError(source, `${key}[${i}].name`, "is missing");
    const value = entry[inner];
    if (value !== undefined && value !== null && !isRecord(value)) throw new KubeConfigError(source, `${key}[${entry.name}].${inner}`, "must be a mapping");
    out.set(entry.name, (value as Record<string, unknown> | null | undefined) ?? {});
  });
  return out;
}

function resolvePath(file: string, baseDir: string): string {
  return isAbsolute(file) ? file : join(baseDir, file);
}

/** `<key>-data` (base64) wins over `<key>` (a file, relative to the kubeconfig's directory). */
function dataOrFile(entry: Record<string, unknown>, key: string, at: string, source: string, baseDir: string): string | undefined {
  const data = entry[`${key}-data`];
  if (typeof data === "string" && data !== "") {
    const text = Buffer.from(data, "base64").toString("utf8");
    if (!text.includes("-----BEGIN")) throw new KubeConfigError(source, `${at}.${key}-data`, "is not base64 of a PEM block");
    return text;
  }
  const file = entry[key];
  if (typeof file !== "string" || file === "") return undefined;
  try {
    return readFileSync(resolvePath(file, baseDir), "utf8");
  } catch (cause) {
    throw new KubeConfigError(source, `${at}.${key}`, `${file} cannot be read: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, { cause });
  }
}

function execConfig(value: unknown, at: string, source: string): ExecConfig {
  if (!isRecord(value)) throw new KubeConfigError(source, at, "must be a mapping");
  if (typeof value["command"] !== "string" || value["command"] === "") throw new KubeConfigError(source, `${at}.command`, "is missing");
  if (typeof value["apiVersion"] !== "string" || !(EXEC_CREDENTIAL_API_VERSIONS as readonly string[]).includes(value["apiVersion"])) {
    throw new KubeConfigError(source, `${at}.apiVersion`, `must be one of ${EXEC_CREDENTIAL_API_VERSIONS.join(", ")}`);
  }
  const args = value["args"] ?? [];
  if (!Array.isArray(args) || !args.every((a) => typeof a === "string")) throw new KubeConfigError(source, `${at}.args`, "must be a list of strings");
  const env = value["env"] ?? [];
  if (!Array.isArray(env) || !env.every((e) => isRecord(e) && typeof e["name"] === "string" && typeof e["value"] === "string")) {
    throw new KubeConfigError(source, `${at}.env`, "must be a list of {name, value} strings");
  }
  return {
    command: value["command"],
    args: args as string[],
    env: env as Array<{ name: string; value: string }>,
    apiVersion: value["apiVersion"],
    ...(typeof value["installHint"] === "string" && { installHint: value["installHint"] }),
  };
}
