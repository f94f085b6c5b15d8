/**
 * A Kubernetes API server emulator for tests and the demo: the REST protocol of kube-apiserver for a documented
 * subset of resources, over HTTP or HTTPS (testbed CA) with bearer tokens mapped to users. Unmodified
 * @kubernetes/client-node and kubectl work against it. Tests drive it in-process: seed and read objects, inject
 * faults, restart it, and read the request log.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createServer as createHttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { isIP } from "node:net";
import type { Clock } from "../clock";
import { systemClock } from "../clock";
import type { TestbedCa } from "../tls/testbed-ca";
import { ResourceRegistry } from "./crd-registry";
import { apiGroupDoc, apiGroupList, apiResourceList, apiVersions, DEFAULT_KUBERNETES_VERSION, versionInfo } from "./discovery";
import type { FailureFault, LatencyFault, RequestFilter, RequestRecord } from "./faults";
import { FaultInjector, matchesFilter } from "./faults";
import { writeKubeconfigFile } from "./kubeconfig";
import { emptyOpenApiV2, groupVersionDocument, openApiIndex, sendOpenApiDocument } from "./openapi";
import { ResourceOperations } from "./resource-operations";
import type { WriteOptions } from "./resource-operations";
import type { KubeObject, ResourceDef } from "./resources";
import { apiVersionOf, metaOf } from "./resources";
import { resolveResource, splitApiPath, verbOf } from "./router";
import type { StoreEvent } from "./store";
import { Store } from "./store";
import { methodNotAllowed, pathNotFound, unauthorized } from "./status-errors";
import type { WatchSession } from "./watch";
import { sendError, sendJson } from "./http-io";
import { handleResourceRequest } from "./resource-handler";

export const DEFAULT_KUBE_API_SERVER_OPTIONS = {
  host: "127.0.0.1",
  port: 0,
  /** Events retained per resource for watch resumption; older resourceVersions get 410 Gone. */
  watchHistorySize: 1000,
  kubernetesVersion: DEFAULT_KUBERNETES_VERSION,
  /** Request bodies above this get 413, as kube-apiserver's 3 MiB limit. */
  maxRequestBodyBytes: 3 * 1024 * 1024,
  watchBookmarkIntervalMs: 60_000,
  /** Watches without timeoutSeconds end after this long (kube-apiserver: 30–60 min). */
  defaultWatchTimeoutSeconds: 1800,
  /** The request log keeps this many most recent requests (long demo runs would otherwise grow without bound). */
  requestLogLimit: 100_000,
  anonymousUser: "system:anonymous",
  /**
   * How long one second of a deleted pod's grace period lasts on the clock, in ms. Scaled down like the other
   * emulators' delays (ARM's operationDurationMs is 2 s for what takes tens of seconds on Azure): a pod's default
   * 30 s grace ends after 3 s unless its kubelet reports it stopped first. 1000 is real time.
   */
  podGracePeriodMsPerSecond: 100,
} as const;

export interface KubeApiServerOptions {
  host?: string;
  port?: number;
  /** Serve HTTPS with a leaf from this CA (needed for kubectl to send tokens); plain HTTP otherwise. */
  tls?: TestbedCa;
  /** Bearer token → user name. When given, every API request must carry one of these tokens (401 otherwise). */
  tokens?: Record<string, string>;
  clock?: Clock;
  watchHistorySize?: number;
  /** Reported by /version; kubectl picks its behaviour (and the dispatcher its binary) from it. */
  kubernetesVersion?: string;
  maxRequestBodyBytes?: number;
  watchBookmarkIntervalMs?: number;
  defaultWatchTimeoutSeconds?: number;
  requestLogLimit?: number;
  podGracePeriodMsPerSecond?: number;
}

const NON_RESOURCE_PUBLIC = new Set(["/healthz", "/livez", "/readyz", "/version"]);

export class KubeApiServer {
  readonly #opts: Required<Omit<KubeApiServerOptions, "tls" | "tokens">>;
  readonly #tls: TestbedCa | undefined;
  readonly #tokens: Map<string, string> | undefined;
  readonly #store: Store;
  readonly #registry = new ResourceRegistry();
  readonly #ops: ResourceOperations;
  readonly #faults = new FaultInjector();
  readonly #watches = new Set<WatchSession>();
  readonly #requests: RequestRecord[] = [];
  #server: Server | undefined;
  #port: number;
  #tlsMaterial: { certPem: string; keyPem: string } | undefined;

  constructor(options: KubeApiServerOptions = {}) {
    const d = DEFAULT_KUBE_API_SERVER_OPTIONS;
    this.#opts = {
      host: options.host ?? d.host,
      port: options.port ?? d.port,
      clock: options.clock ?? systemClock,
      watchHistorySize: options.watchHistorySize ?? d.watchHistorySize,
      kubernetesVersion: options.kubernetesVersion ?? d.kubernetesVersion,
      maxRequestBodyBytes: options.maxRequestBodyBytes ?? d.maxRequestBodyBytes,
      watchBookmarkIntervalMs: options.watchBookmarkIntervalMs ?? d.watchBookmarkIntervalMs,
      defaultWatchTimeoutSeconds: options.defaultWatchTimeoutSeconds ?? d.defaultWatchTimeoutSeconds,
      requestLogLimit: options.requestLogLimit ?? d.requestLogLimit,
      podGracePeriodMsPerSecond: options.podGracePeriodMsPerSecond ?? d.podGracePeriodMsPerSecond,
    };
    for (const key of ["watchHistorySize", "maxRequestBodyBytes", "watchBookmarkIntervalMs", "defaultWatchTimeoutSeconds", "requestLogLimit"] as const) {
      const v = this.#opts[key];
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`KubeApiServer: ${key} must be a positive integer, got ${v}`);
    }
    if (!(Number.isFinite(this.#opts.podGracePeriodMsPerSecond) && this.#opts.podGracePeriodMsPerSecond >= 0)) {
      throw new RangeError(`KubeApiServer: podGracePeriodMsPerSecond must be a number >= 0, got ${this.#opts.podGracePeriodMsPerSecond}`);
    }
    if (!Number.isInteger(this.#opts.port) || this.#opts.port < 0 || this.#opts.port > 65535) {
      throw new RangeError(`KubeApiServer: port must be 0-65535, got ${this.#opts.port}`);
    }
    if (!/^v\d+\.\d+\.\d+/.test(this.#opts.kubernetesVersion)) {
      throw new RangeError(`KubeApiServer: kubernetesVersion must look like v1.31.4, got ${this.#opts.kubernetesVersion}`);
    }
    if (options.tokens) {
      for (const [token, user] of Object.entries(options.tokens)) {
        if (!token || !user) throw new TypeError("KubeApiServer: tokens must map non-empty tokens to non-empty user names");
      }
    }
    this.#tls = options.tls;
    this.#tokens = options.tokens ? new Map(Object.entries(options.tokens)) : undefined;
    this.#store = new Store(this.#opts.watchHistorySize);
    this.#ops = new ResourceOperations(this.#store, this.#registry, () => this.#opts.clock.now(), { podGracePeriodMsPerSecond: this.#opts.podGracePeriodMsPerSecond });
    this.#port = this.#opts.port;
    this.#ops.seedDefaultNamespaces();
  }

  async start(): Promise<void> {
    if (this.#server) throw new Error("KubeApiServer.start: already started");
    if (this.#tls && !this.#tlsMaterial) {
      const host = this.#opts.host;
      const ips = new Set(["127.0.0.1"]);
      if (isIP(host)) ips.add(host);
      this.#tlsMaterial = await this.#tls.issue({ dnsNames: ["localhost", "kubernetes", "kubernetes.default.svc"], ipAddresses: [...ips] });
    }
    await this.#listen(this.#port);
  }

  async #listen(port: number): Promise<void> {
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.#handle(req, res);
    const server = this.#tlsMaterial
      ? createHttpsServer({ cert: this.#tlsMaterial.certPem, key: this.#tlsMaterial.keyPem }, handler)
      : createHttpServer(handler);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, this.#opts.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.#server = server;
    this.#port = (server.address() as AddressInfo).port;
  }

  async #stopListening(cleanWatches: boolean): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    for (const w of [...this.#watches]) w.close(cleanWatches);
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }

  /** Stops the server; open watches end cleanly. */
  async close(): Promise<void> {
    await this.#stopListening(true);
    this.#ops.forgetGracePeriods();
  }

  /**
   * Restarts on the same port: every connection is cut (watch clients see their stream break). With
   * keepState false the store starts over like an empty etcd (default namespaces only); resourceVersions keep
   * increasing, so clients resuming from older ones get 410 and relist.
   */
  async restart(options: { keepState: boolean }): Promise<void> {
    await this.#stopListening(false);
    if (!options.keepState) {
      this.#store.reset();
      this.#ops.forgetGracePeriods();
      this.#registry.setCrds([]);
      this.#ops.seedDefaultNamespaces();
    }
    await this.#listen(this.#port);
  }

  get url(): string {
    if (!this.#server) throw new Error("KubeApiServer.url: call start() first");
    const host = isIP(this.#opts.host) === 6 ? `[${this.#opts.host}]` : this.#opts.host;
    return `${this.#tlsMaterial ? "https" : "http"}://${host}:${this.#port}`;
  }

  get port(): number {
    return this.#port;
  }

  /** Writes a kubeconfig for this server; `user` picks that user's token from the tokens option. */
  async writeKubeconfig(path: string, options: { token?: string; user?: string; namespace?: string } = {}): Promise<void> {
    let token = options.token;
    if (options.user !== undefined) {
      token = [...(this.#tokens ?? new Map<string, string>()).entries()].find(([, u]) => u === options.user)?.[0];
      if (!token) throw new Error(`KubeApiServer.writeKubeconfig: no token for user "${options.user}" in the tokens option`);
    }
    await writeKubeconfigFile(path, {
      server: this.url,
      ...(this.#tls ? { caPem: this.#tls.certPem } : {}),
      ...(token ? { token } : {}),
      ...(options.namespace ? { namespace: options.namespace } : {}),
    });
  }

  // ---- test controls: store ----

  #defFor(obj: KubeObject): ResourceDef {
    const def = this.#registry.all().find((d) => apiVersionOf(d) === obj["apiVersion"] && d.kind === obj["kind"]);
    if (!def) throw new Error(`KubeApiServer: no served resource for apiVersion ${String(obj["apiVersion"])}, kind ${String(obj["kind"])}`);
    return def;
  }

  #defForKey(resource: string): ResourceDef {
    const def = this.#registry.findByStorageKey(resource);
    if (!def) throw new Error(`KubeApiServer: unknown resource "${resource}" (use the plural, with .group for non-core groups, e.g. "leases.coordination.k8s.io")`);
    return def;
  }

  /** Creates an object as a client would (validation included); a given status is stored too. */
  seed(obj: KubeObject): KubeObject {
    const def = this.#defFor(obj);
    const ns = def.namespaced ? (metaOf(obj).namespace ?? "default") : undefined;
    const write: WriteOptions = { dryRun: false, fieldValidation: "Warn" };
    let created = this.#ops.create(def, ns, obj, write).object;
    if (def.statusSubresource && obj["status"] !== undefined) {
      created = this.#ops.update(def, ns, metaOf(created).name ?? "", "status", { ...created, status: obj["status"] }, write).object;
    }
    return created;
  }

  /** Merge-patches an object in place (main resource or status), as a client PATCH would. */
  patchObject(resource: string, namespace: string | undefined, name: string, mergePatch: Record<string, unknown>, options: { subresource?: "status" } = {}): KubeObject {
    const def = this.#defForKey(resource);
    return this.#ops.patch(def, namespace, name, options.subresource, "application/merge-patch+json", mergePatch, { dryRun: false, fieldValidation: "Warn" }).object;
  }

  /**
   * Deletes an object with the API's semantics (finalizers mark it; a pod on a node gets its grace period — pass
   * `gracePeriodSeconds: 0` to force it away now); returns the DELETE response body.
   */
  deleteObject(resource: string, namespace: string | undefined, name: string, options: { gracePeriodSeconds?: number } = {}): KubeObject {
    return this.#ops.delete(this.#defForKey(resource), namespace, name, options, false).object;
  }

  /**
   * Removes the pods whose grace period has ended on the clock; returns how many. A timer does this with a real
   * clock; after advancing a ManualClock call it (or make any request: each one checks first).
   */
  expireGracePeriods(): number {
    return this.#ops.expireGracePeriods();
  }

  /** Resource keys are plurals, with `.group` outside the core group: `pods`, `leases.coordination.k8s.io`. */
  getObject(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const def = this.#defForKey(resource);
    const o = this.#store.get(resource, def.namespaced ? namespace : undefined, name);
    return o ? this.#ops.present(def, o) : undefined;
  }

  listObjects(resource: string, namespace?: string): KubeObject[] {
    const def = this.#defForKey(resource);
    return this.#store.list(resource, namespace).map((o) => this.#ops.present(def, o));
  }

  /**
   * How many objects of a resource `predicate` accepts, without copying them (`listObjects` returns copies): for
   * polling many objects cheaply. The predicate sees the stored object and must not modify it.
   */
  countObjects(resource: string, predicate: (object: Readonly<KubeObject>) => boolean, namespace?: string): number {
    this.#defForKey(resource); // an unknown resource is an error, as in listObjects
    return this.#store.count(resource, predicate, namespace);
  }

  /** Retained watch events of a resource, oldest first. */
  history(resource: string): StoreEvent[] {
    return this.#store.history(resource);
  }

  get resourceVersion(): number {
    return this.#store.resourceVersion;
  }

  /** Forgets all retained history: any watch or continue token from before now gets 410. */
  compactHistory(): void {
    this.#store.compact();
  }

  // ---- test controls: faults and watches ----

  failNext(fault: FailureFault): void {
    this.#faults.failNext(fault);
  }

  addLatency(fault: LatencyFault): void {
    this.#faults.addLatency(fault);
  }

  clearFaults(): void {
    this.#faults.clear();
  }

  /** Ends every open watch: cleanly (end of stream, as a server-side timeout) or abruptly (connection reset). */
  dropWatches(options: { abrupt?: boolean } = {}): number {
    const sessions = [...this.#watches];
    for (const w of sessions) w.close(!options.abrupt);
    return sessions.length;
  }

  /** Sends a BOOKMARK now on every watch that allowed bookmarks. */
  sendBookmarks(): void {
    for (const w of this.#watches) w.bookmark();
  }

  activeWatches(resource?: string): number {
    return [...this.#watches].filter((w) => resource === undefined || w.def.plural === resource).length;
  }

  // ---- test controls: request log ----

  /** Every request so far, oldest first. */
  get requests(): readonly RequestRecord[] {
    return this.#requests;
  }

  countRequests(filter: RequestFilter = {}): number {
    return this.#requests.filter((r) => r.verb !== undefined && matchesFilter(r, filter)).length;
  }

  /** Request counts keyed "verb resource" or "verb resource/subresource", e.g. "list pods", "update pods/status". */
  requestCounts(filter: Pick<RequestFilter, "user"> = {}): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const r of this.#requests) {
      if (!r.verb || !r.resource || (filter.user !== undefined && r.user !== filter.user)) continue;
      const key = `${r.verb} ${r.resource}${r.subresource ? `/${r.subresource}` : ""}`;
      counts[key] = (counts[key] ?? 0) + 1;
    }
    return counts;
  }

  clearRequestLog(): void {
    this.#requests.length = 0;
  }

  // ---- HTTP ----

  #authenticate(req: IncomingMessage, pathname: string): string {
    if (!this.#tokens) return DEFAULT_KUBE_API_SERVER_OPTIONS.anonymousUser;
    const header = req.headers.authorization ?? "";
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const user = m ? this.#tokens.get(m[1] as string) : undefined;
    if (user) return user;
    if (NON_RESOURCE_PUBLIC.has(pathname)) return DEFAULT_KUBE_API_SERVER_OPTIONS.anonymousUser;
    throw unauthorized();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const record: RequestRecord = {
      time: this.#opts.clock.now(),
      user: DEFAULT_KUBE_API_SERVER_OPTIONS.anonymousUser,
      method: req.method ?? "GET",
      path: req.url ?? "/",
      query: "",
      verb: undefined,
      group: undefined,
      resource: undefined,
      subresource: undefined,
      namespace: undefined,
      name: undefined,
      status: 0,
      injectedLatencyMs: 0,
    };
    this.#requests.push(record);
    if (this.#requests.length > this.#opts.requestLogLimit) this.#requests.splice(0, this.#requests.length - this.#opts.requestLogLimit);
    res.setHeader("Audit-Id", randomUUID());
    this.#ops.expireGracePeriods();
    try {
      const url = new URL(req.url ?? "/", "http://localhost");
      record.path = url.pathname;
      record.query = url.search.replace(/^\?/, "");
      record.user = this.#authenticate(req, url.pathname);
      await this.#dispatch(req, res, url, record);
    } catch (err) {
      sendError(res, err);
    }
    record.status = res.statusCode;
  }

  async #dispatch(req: IncomingMessage, res: ServerResponse, url: URL, record: RequestRecord): Promise<void> {
    const method = req.method ?? "GET";
    const path = url.pathname.replace(/\/+$/, "") || "/";
    if (path === "/openapi/v2") {
      if (method !== "GET" && method !== "HEAD") throw methodNotAllowed();
      const doc = emptyOpenApiV2((req.headers.accept ?? "").includes("protobuf"), this.#opts.kubernetesVersion);
      res.writeHead(200, { "Content-Type": doc.contentType, "Content-Length": doc.body.length });
      res.end(method === "HEAD" ? undefined : doc.body);
      return;
    }
    const openApiV3 = /^\/openapi\/v3\/(?:api\/([^/]+)|apis\/([^/]+)\/([^/]+))$/.exec(path);
    if (openApiV3) {
      if (method !== "GET" && method !== "HEAD") throw methodNotAllowed();
      const doc = groupVersionDocument(this.#registry, openApiV3[2] ?? "", openApiV3[1] ?? openApiV3[3] ?? "");
      if (!doc) throw pathNotFound();
      sendOpenApiDocument(req, res, url, path, doc);
      return;
    }
    const nonResource = this.#nonResource(path);
    if (nonResource !== undefined) {
      if (method !== "GET" && method !== "HEAD") throw methodNotAllowed();
      if (typeof nonResource === "string") {
        res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
        res.end(nonResource);
      } else {
        sendJson(res, 200, nonResource);
      }
      return;
    }
    const split = splitApiPath(path);
    if (!split) throw pathNotFound();
    if (split.rest.length === 0) {
      if (!this.#registry.groupVersionServed(split.group, split.version)) throw pathNotFound();
      if (method !== "GET" && method !== "HEAD") throw methodNotAllowed();
      sendJson(res, 200, apiResourceList(this.#registry, split.group, split.version));
      return;
    }
    const route = resolveResource(this.#registry, split.group, split.version, split.rest);
    const verb = verbOf(method, route, url.searchParams);
    Object.assign(record, {
      verb,
      group: route.def.group,
      resource: route.def.plural,
      subresource: route.subresource,
      namespace: route.namespace,
      name: route.name,
    });
    const latency = this.#faults.latencyMs(record);
    record.injectedLatencyMs = latency;
    if (latency > 0) await new Promise((resolve) => setTimeout(resolve, latency));
    const injected = this.#faults.takeFailure(record);
    if (injected) throw injected;
    await handleResourceRequest(
      {
        ops: this.#ops,
        store: this.#store,
        watches: this.#watches,
        nowMs: () => this.#opts.clock.now(),
        maxRequestBodyBytes: this.#opts.maxRequestBodyBytes,
        defaultWatchTimeoutSeconds: this.#opts.defaultWatchTimeoutSeconds,
        watchBookmarkIntervalMs: this.#opts.watchBookmarkIntervalMs,
        user: record.user,
        anonymousUser: DEFAULT_KUBE_API_SERVER_OPTIONS.anonymousUser,
      },
      req,
      res,
      url,
      route,
      verb,
    );
  }

  /** Discovery, OpenAPI, version and health documents; undefined when the path is not one of them. */
  #nonResource(path: string): Record<string, unknown> | string | undefined {
    if (path === "/version") return versionInfo(this.#opts.kubernetesVersion);
    if (path === "/healthz" || path === "/livez" || path === "/readyz") return "ok";
    if (path === "/api") return apiVersions(`${this.#opts.host}:${this.#port}`);
    if (path === "/apis") return apiGroupList(this.#registry);
    if (path === "/openapi/v3") return openApiIndex(this.#registry);
    if (path.startsWith("/openapi/")) throw pathNotFound();
    const group = /^\/apis\/([^/]+)$/.exec(path);
    if (group) {
      const doc = apiGroupDoc(this.#registry, group[1] as string);
      if (!doc) throw pathNotFound();
      return doc;
    }
    return undefined;
  }
}
