import { mkdtemp, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { KubeApiServer } from "@podidentity/testbed";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ExecCredentialError, KubeClient, KubeConfigError, loadKubeConfig, parseKubeConfig, readKubeConfigFile, type KubeConfig } from "../src/index";
import { startKube, StepClock } from "./helpers/cluster";

const PLUGIN = fileURLToPath(new URL("./fixtures/exec-plugin.mjs", import.meta.url));
const PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const b64 = (s: string): string => Buffer.from(s).toString("base64");

let dir: string;
let kube: KubeApiServer;
const clients: KubeClient[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "kube-config-"));
  kube = await startKube({ tokens: { "tok-a": "alice", "tok-b": "bob" } });
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  await kube.close();
  await rm(dir, { recursive: true, force: true });
});

function kubeconfig(user: Record<string, unknown>, cluster: Record<string, unknown> = { server: kube.url }, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "c", cluster }],
    users: [{ name: "u", user }],
    contexts: [{ name: "ctx", context: { cluster: "c", user: "u", namespace: "team" } }],
    "current-context": "ctx",
    ...extra,
  });
}

async function write(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

function client(config: KubeConfig): KubeClient {
  const c = new KubeClient(config);
  clients.push(c);
  return c;
}

const usersSeen = (): string[] => kube.requests.map((r) => r.user);

describe("loadKubeConfig", () => {
  it("takes the flag first, then the first file of $KUBECONFIG, then in-cluster, then ~/.kube/config", async () => {
    const flag = await write("flag", kubeconfig({ token: "f" }, { server: "https://flag.example" }));
    const env1 = await write("env1", kubeconfig({ token: "e" }, { server: "https://env.example" }));
    await write("sa-token", "sa");
    const sa = join(dir, "sa");
    await rm(sa, { recursive: true, force: true });
    await import("node:fs/promises").then((fs) => fs.mkdir(sa));
    await writeFile(join(sa, "token"), "sa-token\n");
    await writeFile(join(sa, "ca.crt"), PEM);
    await writeFile(join(sa, "namespace"), "kube-system\n");
    const home = join(dir, "home");
    await import("node:fs/promises").then((fs) => fs.mkdir(join(home, ".kube"), { recursive: true }));
    await writeFile(join(home, ".kube", "config"), kubeconfig({ token: "h" }, { server: "https://home.example" }));
    const inCluster = { KUBERNETES_SERVICE_HOST: "10.0.0.1", KUBERNETES_SERVICE_PORT: "6443" };
    const load = (kubeconfigPath: string | undefined, env: NodeJS.ProcessEnv) =>
      loadKubeConfig({ ...(kubeconfigPath !== undefined && { kubeconfigPath }), env, homeDir: home, serviceAccountDir: sa });

    expect(load(flag, { KUBECONFIG: env1, ...inCluster }).server).toBe("https://flag.example");
    expect(load(undefined, { KUBECONFIG: `${env1}:${flag}`, ...inCluster }).server).toBe("https://env.example");
    const pod = load(undefined, inCluster);
    expect([pod.server, pod.source, pod.namespace, pod.caPem]).toEqual(["https://10.0.0.1:6443", "in-cluster", "kube-system", PEM]);
    expect(await pod.credentials.get()).toEqual({ token: "sa-token" });
    expect(load(undefined, { KUBERNETES_SERVICE_HOST: "fd00::1" }).server).toBe("https://[fd00::1]:443");
    expect(load(undefined, {}).server).toBe("https://home.example");
    expect(() => loadKubeConfig({ env: {}, homeDir: join(dir, "nobody") })).toThrow(/no kubeconfig found: pass --kubeconfig, set KUBECONFIG/);
  });

  it("reads the current context's server, CA, client certificate (data or file), namespace and insecure flag", async () => {
    const certFile = await write("client.crt", PEM);
    const config = parseKubeConfig(
      kubeconfig({ "client-certificate": "client.crt", "client-key-data": b64("-----BEGIN KEY-----\nk\n-----END KEY-----\n") }, {
        server: "https://api.example:6443/",
        "certificate-authority-data": b64(PEM),
        "insecure-skip-tls-verify": true,
        "tls-server-name": "kubernetes",
      }),
      { source: "inline", baseDir: dir },
    );
    expect(config).toMatchObject({ server: "https://api.example:6443", caPem: PEM, certPem: PEM, insecureSkipTlsVerify: true, tlsServerName: "kubernetes", namespace: "team" });
    expect(config.keyPem).toContain("BEGIN KEY");
    expect(certFile).toBe(join(dir, "client.crt"));
  });

  it("names the kubeconfig file and the field when something is wrong", async () => {
    const cases: Array<[string, string, RegExp]> = [
      ["no-server", kubeconfig({}, {}), /no-server \(clusters\[c\]\.cluster\.server\): is missing/],
      ["bad-url", kubeconfig({}, { server: "not a url" }), /\(clusters\[c\]\.cluster\.server\): "not a url" is not a URL/],
      ["bad-context", kubeconfig({}, undefined, { "current-context": "gone" }), /\(current-context\): names context "gone"/],
      ["missing-ca", kubeconfig({}, { server: "https://x", "certificate-authority": "nope.crt" }), /\(clusters\[c\]\.cluster\.certificate-authority\): nope\.crt cannot be read: ENOENT/],
      ["half-cert", kubeconfig({ "client-certificate-data": b64(PEM) }), /\(users\[u\]\.user\): client-certificate and client-key must be given together/],
      ["auth-provider", kubeconfig({ "auth-provider": { name: "azure" } }), /\(users\[u\]\.user\.auth-provider\): is not supported .*kubelogin convert-kubeconfig/],
      ["exec-version", kubeconfig({ exec: { command: "x", apiVersion: "client.authentication.k8s.io/v1alpha1" } }), /\(users\[u\]\.user\.exec\.apiVersion\): must be one of/],
      ["not-yaml", "clusters: [\n", /not-yaml: is not valid YAML/],
    ];
    for (const [name, text, message] of cases) {
      const path = await write(name, text);
      const error = (() => {
        try {
          readKubeConfigFile(path);
        } catch (e) {
          return e;
        }
      })();
      expect(error, name).toBeInstanceOf(KubeConfigError);
      expect((error as KubeConfigError).message, name).toMatch(message);
      expect((error as KubeConfigError).source).toBe(path);
    }
    expect(() => readKubeConfigFile(join(dir, "absent"))).toThrow(/kubeconfig .*absent: cannot be read: ENOENT/);
  });
});

describe("credentials", () => {
  it("re-reads a token file when it is replaced, so a rotated token is used from the next request on", async () => {
    const tokenFile = await write("token", "tok-a\n");
    const c = client(readKubeConfigFile(await write("config", kubeconfig({ tokenFile: "token" }))));
    await c.list("/api/v1/namespaces");
    await writeFile(tokenFile, "tok-b\n");
    // Same size as before: the mtime is what changed (set explicitly so a coarse filesystem clock cannot hide it).
    await utimes(tokenFile, new Date(), new Date(Date.now() + 5_000));
    await c.list("/api/v1/namespaces");
    expect(usersSeen()).toEqual(["alice", "bob"]);
  });

  it("re-reads the token file after a 401 even when its stamp did not change", async () => {
    const tokenFile = await write("token", "tok-x\n");
    const when = new Date("2026-01-01T00:00:00Z");
    await utimes(tokenFile, when, when);
    const c = client(readKubeConfigFile(await write("config", kubeconfig({ tokenFile }))));
    await expect(c.list("/api/v1/namespaces")).rejects.toMatchObject({ status: 401 });
    await writeFile(tokenFile, "tok-a\n");
    await utimes(tokenFile, when, when);
    await c.list("/api/v1/namespaces");
    // The first call: 401, re-read (still the old token), 401. The second: the unchanged stamp keeps the old token
    // (401), the 401 forces a re-read, and the new token passes.
    expect(kube.requests.map((r) => `${r.user} ${r.status}`)).toEqual(["system:anonymous 401", "system:anonymous 401", "system:anonymous 401", "alice 200"]);
  });

  it("runs an exec plugin with its args, env and KUBERNETES_EXEC_INFO, and keeps its token until it expires", async () => {
    const runs = join(dir, "runs");
    const clock = new StepClock();
    clock.nowMs = Date.parse("2026-12-05T10:00:00Z");
    const text = kubeconfig({
      exec: {
        apiVersion: "client.authentication.k8s.io/v1",
        command: PLUGIN,
        args: ["-"],
        env: [
          { name: "PLUGIN_RUNS", value: runs },
          { name: "PLUGIN_TOKENS", value: "tok,tok" },
          { name: "PLUGIN_SUFFIX", value: "a" },
          { name: "PLUGIN_EXPIRES", value: "2026-12-05T11:00:00Z" },
        ],
      },
    });
    const c = client(parseKubeConfig(text, { source: "inline", baseDir: dir, clock }));
    await c.list("/api/v1/namespaces");
    await c.list("/api/v1/namespaces");
    expect((await readFile(runs, "utf8")).trim().split("\n").map((l) => JSON.parse(l))).toEqual([
      { apiVersion: "client.authentication.k8s.io/v1", kind: "ExecCredential", spec: { interactive: false } },
    ]);
    clock.nowMs = Date.parse("2026-12-05T11:00:01Z");
    await c.list("/api/v1/namespaces");
    expect((await readFile(runs, "utf8")).trim().split("\n")).toHaveLength(2);
    expect(usersSeen()).toEqual(["alice", "alice", "alice"]);
  });

  it("runs the exec plugin again once after a 401 (v1beta1 too)", async () => {
    const runs = join(dir, "runs");
    const text = kubeconfig({
      exec: {
        apiVersion: "client.authentication.k8s.io/v1beta1",
        command: PLUGIN,
        env: [
          { name: "PLUGIN_RUNS", value: runs },
          { name: "PLUGIN_TOKENS", value: "revoked,tok-b" },
        ],
      },
    });
    const c = client(parseKubeConfig(text, { source: "inline", baseDir: dir }));
    await c.list("/api/v1/namespaces");
    expect((await readFile(runs, "utf8")).trim().split("\n")).toHaveLength(2);
    expect(kube.requests.map((r) => `${r.user} ${r.status}`)).toEqual(["system:anonymous 401", "bob 200"]);
  });

  it("reports a failing, missing or misbehaving plugin without its output", async () => {
    const runs = join(dir, "runs");
    const failing = kubeconfig({ exec: { apiVersion: "client.authentication.k8s.io/v1", command: PLUGIN, env: [{ name: "PLUGIN_RUNS", value: runs }, { name: "PLUGIN_FAIL", value: "1" }] } });
    await expect(client(parseKubeConfig(failing, { source: "inline", baseDir: dir })).list("/api/v1/namespaces")).rejects.toThrow(
      new ExecCredentialError(PLUGIN, "exited with 3: plugin: login required"),
    );
    const missing = kubeconfig({ exec: { apiVersion: "client.authentication.k8s.io/v1", command: "./no-such-plugin", installHint: "install kubelogin" } });
    await expect(client(parseKubeConfig(missing, { source: "inline", baseDir: dir })).list("/api/v1/namespaces")).rejects.toThrow(/no-such-plugin: not found; install kubelogin/);
    const wrongVersion = kubeconfig({
      exec: { apiVersion: "client.authentication.k8s.io/v1", command: PLUGIN, env: [{ name: "PLUGIN_RUNS", value: runs }, { name: "PLUGIN_TOKENS", value: "tok-a" }, { name: "PLUGIN_API_VERSION", value: "client.authentication.k8s.io/v1beta1" }] },
    });
    await expect(client(parseKubeConfig(wrongVersion, { source: "inline", baseDir: dir })).list("/api/v1/namespaces")).rejects.toThrow(
      /printed apiVersion "client.authentication.k8s.io\/v1beta1", but the kubeconfig asked for client.authentication.k8s.io\/v1/,
    );
  });
});

describe("KubeClient factories", () => {
  it("builds a client from kubeconfig text and from loadKubeConfig's order", async () => {
    const text = kubeconfig({ token: "tok-a" });
    const fromText = client(KubeClient.fromKubeconfig(text).config);
    await fromText.list("/api/v1/namespaces");
    const path = await write("config", kubeconfig({ token: "tok-b" }));
    const loaded = KubeClient.load({ env: { KUBECONFIG: path } });
    clients.push(loaded);
    await loaded.list("/api/v1/namespaces");
    expect([loaded.config.source, ...usersSeen()]).toEqual([path, "alice", "bob"]);
  });
});
