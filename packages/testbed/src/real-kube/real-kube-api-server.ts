/**
 * A real kube-apiserver (1.20, built by scripts/ensure-kube-apiserver.sh) with its own etcd, on loopback: the second
 * Kubernetes backend next to the in-process `KubeApiServer` emulator. It offers what the emulator offers where a
 * real server can honour it — `url`, `port`, a kubeconfig per identity, `start()`/`close()`, seeding and reading
 * objects (asynchronously, over REST) — and adds what only a real server has: the RBAC authorizer, server-side apply,
 * TokenRequest-signed service-account tokens. Fault injection, latency, dropped watches and restarts stay
 * emulator-only; how the two differ is measured by test/real-kube/conformance.test.ts (packages/testbed/README.md,
 * "A real kube-apiserver as the second backend" and "Known differences").
 *
 * Authentication is a static token file: one token per user given in `tokens` (service-account names get the
 * groups the real service-account authenticator gives them) and an admin token in `system:masters` for seeding.
 * No kube-controller-manager runs: no garbage collection, namespaces stay Terminating, no token Secrets.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderKubeconfig } from "../kube/kubeconfig";
import type { KubeObject } from "../kube/resources";
import { KubeRestClient, type KubeJson } from "../netns/kube-client";
import type { TestbedCa } from "../tls/testbed-ca";
import { findRealKubeBinaries, type RealKubeBinaries } from "./real-kube-binaries";

/** The namespaces kube-apiserver's bootstrap controller creates after it starts. */
const SYSTEM_NAMESPACES = ["default", "kube-system", "kube-public", "kube-node-lease"] as const;

export const DEFAULT_REAL_KUBE_API_SERVER_OPTIONS = {
  /** From etcd's first start to kube-apiserver's /readyz answering 200 (about 5–10 s on 2 shared cores). */
  startTimeoutMs: 90_000,
  /** After SIGTERM, how long each process may take before SIGKILL. */
  stopGraceMs: 5_000,
  /** The user every seeding call of this class uses; member of system:masters. */
  adminUser: "testbed-admin",
  serviceClusterIpRange: "10.96.0.0/24",
  serviceAccountIssuer: "https://kubernetes.default.svc",
  /**
   * kube-apiserver's watch cache. Off, a watch from a compacted resourceVersion reaches etcd and gets 410 exactly
   * like the emulator's history limit; on, the cache answers (as on real clusters).
   */
  watchCache: true,
} as const;

export interface RealKubeApiServerOptions {
  /** Serves HTTPS with a leaf from this CA for 127.0.0.1 and localhost. */
  tls: TestbedCa;
  /** Bearer token → user name, as the emulator's `tokens`. */
  tokens?: Record<string, string>;
  binaries?: RealKubeBinaries;
  startTimeoutMs?: number;
  stopGraceMs?: number;
  adminUser?: string;
  watchCache?: boolean;
  /** More kube-apiserver flags (`--name=value`), appended last. */
  extraArgs?: string[];
}

export class RealKubeError extends Error {
  readonly code: "REAL_KUBE_UNAVAILABLE" | "REAL_KUBE_START_FAILED";
  constructor(code: RealKubeError["code"], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "RealKubeError";
    this.code = code;
  }
}

/** Why no real server can start here (binaries missing), with what to do; undefined when it can. */
export function realKubeUnavailableReason(): string | undefined {
  const found = findRealKubeBinaries();
  return "missing" in found ? found.missing : undefined;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const DIR_PREFIX = "podidentity-real-kube-";
const OWNER_FILE = "owner.pid";

/**
 * Deletes data directories of earlier servers whose owning process is gone (killed before close(): its etcd and
 * kube-apiserver died with it, see #spawn, but their data stayed behind on tmpfs).
 */
async function removeOrphanedDirs(base: string): Promise<void> {
  let entries: string[];
  try {
    entries = (await readdir(base)).filter((e) => e.startsWith(DIR_PREFIX));
  } catch {
    return;
  }
  for (const entry of entries) {
    const dir = join(base, entry);
    const owner = Number(await readFile(join(dir, OWNER_FILE), "utf8").catch(() => ""));
    if (Number.isInteger(owner) && owner > 0 && pidAlive(owner)) continue;
    // a directory being created right now has no owner file yet: leave young ones alone
    const age = Date.now() - (await stat(dir).then((st) => st.mtimeMs, () => Date.now()));
    if (owner > 0 || age > 60_000) await rm(dir, { recursive: true, force: true });
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

const SERVICE_ACCOUNT = /^system:serviceaccount:([^:]+):([^:]+)$/;
const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));

/** One line of kube-apiserver's --token-auth-file: token,user,uid,"groups". */
function tokenLine(token: string, user: string, groups: string[]): string {
  if (/[,"\n]/.test(token) || /[,"\n]/.test(user)) throw new TypeError(`RealKubeApiServer: tokens and user names must not contain commas, quotes or newlines ("${user}")`);
  return `${token},${user},${user},"${groups.join(",")}"`;
}

interface Child {
  name: string;
  process: ChildProcess;
  logPath: string;
  exited: Promise<void>;
}

export class RealKubeApiServer {
  readonly #opts: Required<Omit<RealKubeApiServerOptions, "tokens" | "binaries" | "extraArgs">> & { extraArgs: string[] };
  readonly #tokens: Map<string, string>;
  readonly #adminToken = randomBytes(24).toString("hex");
  #binaries: RealKubeBinaries | undefined;
  #dir: string | undefined;
  #children: Child[] = [];
  #port = 0;
  #etcdUrl = "";
  #killOnExit: (() => void) | undefined;
  readonly #discovery = new Map<string, Array<{ name: string; kind: string; namespaced: boolean }>>();

  constructor(options: RealKubeApiServerOptions) {
    const d = DEFAULT_REAL_KUBE_API_SERVER_OPTIONS;
    if (!options?.tls) throw new TypeError("RealKubeApiServer: the tls option (a TestbedCa) is required: kube-apiserver serves HTTPS only");
    this.#opts = {
      tls: options.tls,
      startTimeoutMs: options.startTimeoutMs ?? d.startTimeoutMs,
      stopGraceMs: options.stopGraceMs ?? d.stopGraceMs,
      adminUser: options.adminUser ?? d.adminUser,
      watchCache: options.watchCache ?? d.watchCache,
      extraArgs: options.extraArgs ?? [],
    };
    for (const key of ["startTimeoutMs", "stopGraceMs"] as const) {
      const v = this.#opts[key];
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`RealKubeApiServer: ${key} must be a positive integer, got ${v}`);
    }
    this.#tokens = new Map(Object.entries(options.tokens ?? {}));
    for (const [token, user] of this.#tokens) {
      if (!token || !user) throw new TypeError("RealKubeApiServer: tokens must map non-empty tokens to non-empty user names");
      tokenLine(token, user, []);
    }
    if (options.binaries) this.#binaries = options.binaries;
  }

  /** Starts etcd, then kube-apiserver, and resolves once /readyz answers 200 (RBAC roles bootstrapped) and the system namespaces exist. */
  async start(): Promise<void> {
    if (this.#dir) throw new Error("RealKubeApiServer.start: already started");
    if (!this.#binaries) {
      const found = findRealKubeBinaries();
      if ("missing" in found) throw new RealKubeError("REAL_KUBE_UNAVAILABLE", `RealKubeApiServer: ${found.missing}`);
      this.#binaries = found;
    }
    // tmpfs when there is one: etcd fsyncs every write, which costs milliseconds each on a disk.
    const base = existsSync("/dev/shm") ? "/dev/shm" : tmpdir();
    await removeOrphanedDirs(base);
    this.#dir = await mkdtemp(join(base, DIR_PREFIX));
    await writeFile(join(this.#dir, OWNER_FILE), String(process.pid));
    this.#killOnExit = () => {
      for (const c of this.#children) c.process.kill("SIGKILL");
    };
    process.once("exit", this.#killOnExit);
    try {
      await this.#startEtcd();
      await this.#startApiserver();
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  #spawn(name: string, binary: string, args: string[]): Child {
    const logPath = join(this.#dir!, `${name}.log`);
    const fd = openSync(logPath, "a");
    // With util-linux's setpriv the kernel kills the child when its parent dies, even by SIGKILL (a crashed or killed
    // test worker), which the exit handler set in start() cannot cover; without setpriv that handler is the only guard.
    const [cmd, cmdArgs] = SETPRIV ? [SETPRIV, ["--pdeathsig", "KILL", "--", binary, ...args]] : [binary, args];
    const child = spawn(cmd, cmdArgs, { stdio: ["ignore", fd, fd], env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin" } });
    closeSync(fd);
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once("exit", () => resolve());
    });
    child.once("error", () => undefined);
    const entry = { name, process: child, logPath, exited };
    this.#children.push(entry);
    return entry;
  }

  #logTail(child: Child): string {
    try {
      return readFileSync(child.logPath, "utf8").split("\n").slice(-15).join("\n");
    } catch {
      return "(no log)";
    }
  }

  async #waitFor(child: Child, what: string, probe: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + this.#opts.startTimeoutMs;
    for (;;) {
      if (child.process.exitCode !== null || child.process.signalCode !== null) {
        throw new RealKubeError("REAL_KUBE_START_FAILED", `RealKubeApiServer: ${child.name} exited (${child.process.exitCode ?? child.process.signalCode}) before ${what}; its log ends:\n${this.#logTail(child)}`);
      }
      if (await probe().catch(() => false)) return;
      if (Date.now() > deadline) {
        throw new RealKubeError("REAL_KUBE_START_FAILED", `RealKubeApiServer: ${what} not within startTimeoutMs (${this.#opts.startTimeoutMs} ms); ${child.name}'s log ends:\n${this.#logTail(child)}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async #startEtcd(): Promise<void> {
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    this.#etcdUrl = `http://127.0.0.1:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    const etcd = this.#spawn("etcd", this.#binaries!.etcd, [
      `--name=testbed`,
      `--data-dir=${join(this.#dir!, "etcd")}`,
      `--listen-client-urls=${this.#etcdUrl}`,
      `--advertise-client-urls=${this.#etcdUrl}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=testbed=${peer}`,
      "--log-level=warn",
      "--logger=zap",
    ]);
    await this.#waitFor(etcd, "etcd healthy", async () => {
      const res = await fetch(`${this.#etcdUrl}/health`, { signal: AbortSignal.timeout(2_000) });
      return res.ok;
    });
  }

  async #startApiserver(): Promise<void> {
    const dir = this.#dir!;
    const tlsLeaf = await this.#opts.tls.issue({ dnsNames: ["localhost", "kubernetes", "kubernetes.default.svc"], ipAddresses: ["127.0.0.1", "10.96.0.1"] });
    writeFileSync(join(dir, "serving.crt"), tlsLeaf.certPem);
    writeFileSync(join(dir, "serving.key"), tlsLeaf.keyPem, { mode: 0o600 });
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    writeFileSync(join(dir, "sa.key"), privateKey.export({ type: "pkcs1", format: "pem" }), { mode: 0o600 });
    const lines = [tokenLine(this.#adminToken, this.#opts.adminUser, ["system:masters"])];
    for (const [token, user] of this.#tokens) {
      const sa = SERVICE_ACCOUNT.exec(user);
      lines.push(tokenLine(token, user, sa ? ["system:serviceaccounts", `system:serviceaccounts:${sa[1]}`] : []));
    }
    await writeFile(join(dir, "tokens.csv"), `${lines.join("\n")}\n`, { mode: 0o600 });
    this.#port = await freePort();
    const d = DEFAULT_REAL_KUBE_API_SERVER_OPTIONS;
    const apiserver = this.#spawn("kube-apiserver", this.#binaries!.kubeApiserver, [
      `--etcd-servers=${this.#etcdUrl}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${this.#port}`,
      "--insecure-port=0",
      `--cert-dir=${join(dir, "certs")}`,
      `--tls-cert-file=${join(dir, "serving.crt")}`,
      `--tls-private-key-file=${join(dir, "serving.key")}`,
      `--token-auth-file=${join(dir, "tokens.csv")}`,
      "--authorization-mode=RBAC",
      `--service-account-key-file=${join(dir, "sa.key")}`,
      `--service-account-signing-key-file=${join(dir, "sa.key")}`,
      `--service-account-issuer=${d.serviceAccountIssuer}`,
      `--api-audiences=${d.serviceAccountIssuer}`,
      `--service-cluster-ip-range=${d.serviceClusterIpRange}`,
      "--endpoint-reconciler-type=none",
      // No kube-controller-manager issues token Secrets, so the ServiceAccount admission plugin would refuse pods.
      "--disable-admission-plugins=ServiceAccount",
      `--watch-cache=${this.#opts.watchCache}`,
      "--profiling=false",
      "--logtostderr=true",
      "--v=0",
      ...this.#opts.extraArgs,
    ]);
    const admin = this.#client(this.#adminToken);
    await this.#waitFor(apiserver, "kube-apiserver /readyz", async () => {
      const r = await admin.call("GET", "/readyz");
      return r !== undefined;
    });
    // /readyz is 200 before the bootstrap controller has created the system namespaces (one by one): wait for all.
    await this.#waitFor(apiserver, "namespaces default, kube-system, kube-public, kube-node-lease", async () => {
      const list = (await admin.call("GET", "/api/v1/namespaces")) as { items?: Array<{ metadata?: { name?: string } }> };
      const names = new Set((list.items ?? []).map((n) => n.metadata?.name));
      return SYSTEM_NAMESPACES.every((n) => names.has(n));
    });
  }

  #client(token: string): KubeRestClient {
    return new KubeRestClient({ url: this.url, token, caPem: this.#opts.tls.certPem, requestTimeoutMs: 30_000 });
  }

  /** Stops kube-apiserver, then etcd (SIGTERM, SIGKILL after stopGraceMs), and deletes their data. Idempotent. */
  async close(): Promise<void> {
    for (const child of [...this.#children].reverse()) {
      if (child.process.exitCode === null && child.process.signalCode === null) {
        child.process.kill("SIGTERM");
        const timer = setTimeout(() => child.process.kill("SIGKILL"), this.#opts.stopGraceMs);
        await child.exited;
        clearTimeout(timer);
      }
    }
    this.#children = [];
    if (this.#killOnExit) process.off("exit", this.#killOnExit);
    this.#killOnExit = undefined;
    if (this.#dir) await rm(this.#dir, { recursive: true, force: true });
    this.#dir = undefined;
  }

  /**
   * Compacts etcd at its current revision, through etcd's JSON gateway: every older resourceVersion is gone, so a
   * watch from one gets 410 Expired — from etcd itself with `watchCache: false`; the watch cache keeps its own window.
   */
  async compact(): Promise<void> {
    if (!this.#etcdUrl) throw new Error("RealKubeApiServer.compact: call start() first");
    const post = async (path: string, body: unknown): Promise<Record<string, unknown>> => {
      const res = await fetch(`${this.#etcdUrl}${path}`, { method: "POST", body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
      const json = (await res.json()) as Record<string, unknown>;
      if (!res.ok) throw new Error(`RealKubeApiServer.compact: etcd ${path} answered ${res.status}: ${JSON.stringify(json).slice(0, 200)}`);
      return json;
    };
    const range = await post("/v3/kv/range", { key: Buffer.from("/").toString("base64") });
    const revision = (range["header"] as { revision?: string } | undefined)?.revision;
    if (!revision) throw new Error("RealKubeApiServer.compact: etcd reported no revision");
    await post("/v3/kv/compaction", { revision, physical: true });
  }

  /** PIDs of etcd and kube-apiserver while running (tests check nothing outlives close()). */
  get pids(): number[] {
    return this.#children.map((c) => c.process.pid).filter((p): p is number => p !== undefined);
  }

  get url(): string {
    if (!this.#dir || this.#port === 0) throw new Error("RealKubeApiServer.url: call start() first");
    return `https://127.0.0.1:${this.#port}`;
  }

  get port(): number {
    return this.#port;
  }

  /** The admin user's token (system:masters): for seeding and for reading what the product wrote. */
  get adminToken(): string {
    return this.#adminToken;
  }

  /** Token of `user` from the tokens option (or the admin's); throws naming the user when there is none. */
  tokenFor(user: string): string {
    if (user === this.#opts.adminUser) return this.#adminToken;
    const token = [...this.#tokens].find(([, u]) => u === user)?.[0];
    if (!token) throw new Error(`RealKubeApiServer: no token for user "${user}" in the tokens option`);
    return token;
  }

  /** kubeconfig text for `user` (default: the admin), as the emulator's writeKubeconfig writes. */
  kubeconfig(options: { user?: string; token?: string; namespace?: string } = {}): string {
    const token = options.token ?? this.tokenFor(options.user ?? this.#opts.adminUser);
    return renderKubeconfig({ server: this.url, caPem: this.#opts.tls.certPem, token, ...(options.namespace ? { namespace: options.namespace } : {}) });
  }

  async writeKubeconfig(path: string, options: { user?: string; token?: string; namespace?: string } = {}): Promise<void> {
    await writeFile(path, this.kubeconfig(options), { mode: 0o600 });
  }

  /** A REST client as the admin (default) or as `user`. */
  client(user?: string): KubeRestClient {
    return this.#client(user === undefined ? this.#adminToken : this.tokenFor(user));
  }

  /**
   * Creates an object as the admin. A given `status` is kept: written through the status subresource afterwards when
   * the resource has one (there a create drops it), else stored by the create itself.
   */
  async seed(obj: KubeObject): Promise<KubeJson> {
    const { path, hasStatus } = await this.#collectionPath(obj);
    const created = await this.client().call("POST", path, obj);
    const status = (obj as { status?: unknown }).status;
    if (status !== undefined && hasStatus && obj["kind"] !== "CustomResourceDefinition") {
      const name = (created["metadata"] as { name: string }).name;
      return this.client().call("PATCH", `${path}/${name}/status`, { status }, "application/merge-patch+json");
    }
    return created;
  }

  /** The collection URL of an object's kind, from the server's discovery (so custom resources work once established). */
  async #collectionPath(obj: KubeObject): Promise<{ path: string; hasStatus: boolean }> {
    const apiVersion = String(obj["apiVersion"] ?? "");
    const kind = String(obj["kind"] ?? "");
    const base = apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    let resources = this.#discovery.get(base);
    let found = resources?.find((r) => r.kind === kind && !r.name.includes("/"));
    if (!found) {
      const doc = await this.client().call("GET", base).catch(() => ({ resources: [] }));
      resources = (doc["resources"] as Array<{ name: string; kind: string; namespaced: boolean }> | undefined) ?? [];
      this.#discovery.set(base, resources);
      found = resources.find((r) => r.kind === kind && !r.name.includes("/"));
    }
    if (!found) throw new Error(`RealKubeApiServer.seed: the server serves no kind ${kind} in ${apiVersion} (for a custom resource: is its CRD established?)`);
    const ns = found.namespaced ? ((obj["metadata"] as { namespace?: string } | undefined)?.namespace ?? "default") : undefined;
    const hasStatus = resources!.some((r) => r.name === `${found.name}/status`);
    return { path: `${base}${ns ? `/namespaces/${ns}` : ""}/${found.name}`, hasStatus };
  }

  /** Reads an object as the admin; undefined on 404. `resource` is the plural, with `.group` outside core. */
  async getObject(resource: string, namespace: string | undefined, name: string): Promise<KubeJson | undefined> {
    try {
      return await this.client().call("GET", `${resourcePath(resource, namespace)}/${name}`);
    } catch (err) {
      if ((err as { details?: { statusCode?: number } }).details?.statusCode === 404) return undefined;
      throw err;
    }
  }

  async listObjects(resource: string, namespace?: string): Promise<KubeJson[]> {
    const list = await this.client().call("GET", resourcePath(resource, namespace));
    return (list["items"] as KubeJson[] | undefined) ?? [];
  }
}

/** `/api/v1[/namespaces/ns]/pods` or `/apis/group/version[/namespaces/ns]/plural`, from a storage key like `leases.coordination.k8s.io`. */
export function resourcePath(resource: string, namespace: string | undefined, version?: string): string {
  const dot = resource.indexOf(".");
  const plural = dot < 0 ? resource : resource.slice(0, dot);
  const group = dot < 0 ? "" : resource.slice(dot + 1);
  const v = version ?? GROUP_VERSIONS[group];
  if (v === undefined) throw new Error(`RealKubeApiServer: no known version for group "${group}"; pass one`);
  const base = group === "" ? `/api/${v}` : `/apis/${group}/${v}`;
  return `${base}${namespace ? `/namespaces/${namespace}` : ""}/${plural}`;
}

const GROUP_VERSIONS: Record<string, string> = {
  "": "v1",
  "apps": "v1",
  "coordination.k8s.io": "v1",
  "rbac.authorization.k8s.io": "v1",
  "apiextensions.k8s.io": "v1",
  "policy": "v1beta1",
  "scheduling.k8s.io": "v1",
  "aadpodidentity.k8s.io": "v1",
};
