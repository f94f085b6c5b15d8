import { networkInterfaces } from "node:os";
import { IDENTITY_TYPE, type AzureIdentity } from "@podidentity/api";
import pino, { type Logger } from "pino";
import { HttpAgent } from "./http-request";
import { resolveNmiConfig, type NmiConfig, type NmiConfigInput } from "./config";
import { redactId } from "./errors";
import { IdentityResolver } from "./identity/identity-resolver";
import { IdentityStore } from "./identity/identity-store";
import { execRunner } from "./interception/command-runner";
import { IptablesManager } from "./interception/iptables-manager";
import { checkNetworkPlugin, detectIptablesBypass } from "./interception/network-plugin-check";
import { removeStartupTaint } from "./interception/node-taint";
import type { KubeClient } from "./kube/kube-client";
import { NmiMetrics } from "./metrics";
import { PodCache } from "./pods/pod-cache";
import { OpsServer, readinessBody, type ReadinessReport } from "./probes";
import { NmiServer } from "./server/nmi-server";
import { TokenHandler } from "./server/token-handler";
import { UpstreamProxy } from "./server/upstream-proxy";
import { EntraTokenSource } from "./token/entra-token-source";
import { ImdsTokenSource } from "./token/imds-token-source";
import { TokenCache } from "./token/token-cache";
import { UpstreamLimiter } from "./token/upstream-limiter";

export interface NmiOptions extends NmiConfigInput {
  /** The API server (KubeClient.fromDefault(), fromKubeconfig(...), inCluster()). */
  kube: KubeClient;
  logger?: Logger;
  /** Clock for token expiry, grace windows and cache refresh (ms since the epoch). */
  now?: () => number;
  /**
   * The interception manager; `null` runs without iptables (tests, or a node where something else redirects);
   * absent → iptables in NMI's own network namespace.
   */
  interception?: IptablesManager | null;
  /** Extra CA (PEM) trusted for Entra ID (private clouds, the testbed). */
  entraCaPem?: string;
  /** Agent for calls to the upstream IMDS (default: a keep-alive node:http Agent). */
  upstreamAgent?: HttpAgent;
  /** Process metrics (CPU, RSS, event loop lag) on /metrics; default true. */
  collectDefaultMetrics?: boolean;
  /** Whether to apply the kubenet guard (default true). */
  checkNetworkPlugin?: boolean;
}

function defaultNodeAddresses(): string[] {
  const addresses = new Set(["127.0.0.1", "::1"]);
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      // 127.0.0.0/8 beyond 127.0.0.1 stays available to simulated pods (tests give each pod its own 127.x.y.z).
      if (!a.address.startsWith("127.")) addresses.add(a.address);
    }
  }
  return [...addresses];
}

/**
 * The Node Managed Identity agent: interception, pod cache, identity informers, token cache and the
 * IMDS-compatible server, composed. `start()` brings it up in dependency order and `stop()` tears it down
 * (iptables rules removed). Everything external comes in through options, so tests run it in-process against
 * the testbed's API server and Azure emulators.
 */
export class Nmi {
  readonly config: NmiConfig;
  readonly logger: Logger;
  readonly metrics: NmiMetrics;
  readonly pods: PodCache;
  readonly identities: IdentityStore;
  readonly tokens: TokenCache;
  readonly limiter: UpstreamLimiter;
  readonly interception: IptablesManager | null;
  readonly #options: NmiOptions;
  readonly #now: () => number;
  readonly #agent: HttpAgent;
  readonly #ownsAgent: boolean;
  readonly #server: NmiServer;
  readonly #probes: OpsServer;
  readonly #metricsServer: OpsServer;
  readonly #nodeAddresses: Set<string>;
  #verifyTimer: NodeJS.Timeout | undefined;
  #started = false;
  #stopped = false;
  #interceptionError: string | undefined;
  /** The verify pass in flight: stop() waits for it, or it could re-install the rules stop() just removed. */
  #verifying: Promise<void> | undefined;

  constructor(options: NmiOptions) {
    this.#options = options;
    this.config = resolveNmiConfig(options);
    const config = this.config;
    this.logger = options.logger ?? pino({ name: "podidentity-nmi", base: { node: config.nodeName } });
    this.#now = options.now ?? Date.now;
    this.metrics = new NmiMetrics({ defaultMetrics: options.collectDefaultMetrics ?? true });
    this.#nodeAddresses = new Set(config.nodeAddresses ?? defaultNodeAddresses());
    this.#ownsAgent = options.upstreamAgent === undefined;
    // More sockets than the limiter's concurrency: proxied requests (not limited) share the agent.
    this.#agent = options.upstreamAgent ?? new HttpAgent({ keepAlive: true, maxSockets: Math.max(16, config.upstreamMaxConcurrent * 2), timeout: config.upstreamTimeoutMs });
    const onInformerError = (informer: string): void => this.metrics.informerErrors.inc({ informer });

    this.pods = new PodCache({ client: options.kube, nodeName: config.nodeName, logger: this.logger, onInformerError });
    this.identities = new IdentityStore({
      client: options.kube,
      nodeName: config.nodeName,
      operationMode: config.operationMode,
      logger: this.logger,
      now: this.#now,
      onInformerError,
    });
    this.limiter = new UpstreamLimiter({
      requestsPerSecond: config.upstreamRequestsPerSecond,
      maxConcurrent: config.upstreamMaxConcurrent,
      queueTimeoutMs: config.upstreamQueueTimeoutMs,
      retryAfterSeconds: config.retryAfterSeconds,
    });
    const observe = (target: string) => (outcome: string, seconds: number) => {
      this.metrics.upstreamCalls.inc({ target, outcome });
      this.metrics.upstreamDuration.observe({ target }, seconds);
    };
    const imds = new ImdsTokenSource({
      upstream: config.upstreamImds,
      agent: this.#agent,
      limiter: this.limiter,
      timeoutMs: config.upstreamTimeoutMs,
      connectTimeoutMs: config.upstreamConnectTimeoutMs,
      retryAfterSeconds: config.retryAfterSeconds,
      now: this.#now,
      onCall: observe("imds"),
    });
    const entra = new EntraTokenSource({
      client: options.kube,
      retryAfterSeconds: config.retryAfterSeconds,
      ...(options.entraCaPem !== undefined && { caPem: options.entraCaPem }),
      onCall: observe("entra"),
    });
    this.tokens = new TokenCache({
      sourceFor: (identity: AzureIdentity) => (identity.spec.type === IDENTITY_TYPE.UserAssignedMSI ? imds : entra),
      now: this.#now,
      enabled: config.tokenCacheEnabled,
      maxEntries: config.tokenCacheMaxEntries,
      refreshWindowMs: config.tokenRefreshWindowMs,
      onLookup: (result) => this.metrics.tokenCache.inc({ result }),
      onBackgroundError: (error, identity) =>
        this.logger.warn({ identity: identity.metadata.name, clientId: redactId(identity.spec.clientID), err: (error as Error).message }, "background token refresh failed; the cached token is served until it expires"),
    });
    this.identities.on("change", (change) => {
      for (const key of change.identityKeys) this.tokens.invalidateIdentity(key);
    });
    const resolver = new IdentityResolver({
      store: this.identities,
      operationMode: config.operationMode,
      forceNamespaced: config.forceNamespaced,
      retryAfterSeconds: config.retryAfterSeconds,
      now: this.#now,
      onWaitStart: () => this.metrics.pendingInFlight.inc(),
      onWait: (outcome, seconds) => {
        this.metrics.pendingInFlight.dec();
        this.metrics.pendingWaits.inc({ outcome });
        this.metrics.pendingWaitDuration.observe(seconds);
      },
    });
    const proxy = new UpstreamProxy({
      upstream: config.upstreamImds,
      agent: this.#agent,
      timeoutMs: config.upstreamTimeoutMs,
      connectTimeoutMs: config.upstreamConnectTimeoutMs,
      maxBodyBytes: config.maxProxyBodyBytes,
      retryAfterSeconds: config.retryAfterSeconds,
    });
    const handler = new TokenHandler({
      config,
      pods: this.pods,
      resolver,
      tokens: this.tokens,
      proxy,
      limiter: this.limiter,
      logger: this.logger,
      now: this.#now,
      isNodeAddress: (ip) => this.#nodeAddresses.has(ip),
    });
    this.#server = new NmiServer({ config, handler, proxy, metrics: this.metrics, logger: this.logger });
    const targetIp = config.listenAddress === "0.0.0.0" || config.listenAddress === "::" ? "127.0.0.1" : config.listenAddress;
    this.interception =
      options.interception === undefined
        ? new IptablesManager({
            metadataIp: config.metadataIp,
            metadataPort: config.metadataPort,
            targetIp,
            targetPort: config.port,
            run: execRunner(),
            logger: this.logger,
            onRepair: () => this.metrics.interceptionRepairs.inc(),
          })
        : options.interception;
    this.#probes = new OpsServer({
      "/healthz": () => ({ status: this.#stopped ? 503 : 200, body: this.#stopped ? "stopping\n" : "ok\n" }),
      "/readyz": () => {
        const report = this.readiness();
        return { status: report.ready ? 200 : 503, body: readinessBody(report) };
      },
    });
    this.#metricsServer = new OpsServer({
      "/metrics": async () => {
        this.metrics.ready.set(this.readiness().ready ? 1 : 0);
        return { status: 200, contentType: this.metrics.registry.contentType, body: await this.metrics.registry.metrics() };
      },
    });
  }

  /** IMDS-compatible listener, e.g. `http://127.0.0.1:2579`. */
  get url(): string {
    return this.#server.url;
  }

  get probeUrl(): string {
    return this.#probes.url;
  }

  get metricsUrl(): string {
    return this.#metricsServer.url;
  }

  readiness(): ReadinessReport {
    const checks = {
      interception: this.interception === null || (this.interception.installed && this.#interceptionError === undefined),
      "informer-pods": this.pods.synced,
      "informer-identities": this.identities.synced,
    };
    return { ready: this.#started && !this.#stopped && Object.values(checks).every(Boolean), checks };
  }

  /**
   * Brings NMI up: network plugin guard, listeners (probes answer while the rest starts), informers synced,
   * interception installed (fatal when it fails), stale conntrack entries, the node's startup taint.
   */
  async start(): Promise<void> {
    const { config } = this;
    if (this.#options.checkNetworkPlugin !== false) {
      await checkNetworkPlugin({ kubeletConfigPath: config.kubeletConfigPath, allowKubenet: config.allowNetworkPluginKubenet, logger: this.logger });
    }
    if (config.httpProbePort !== null) await this.#probes.listen(config.httpProbePort, "0.0.0.0");
    if (config.prometheusPort !== null) await this.#metricsServer.listen(config.prometheusPort, "0.0.0.0");
    await this.#server.listen();
    await Promise.all([this.pods.start(), this.identities.start()]);
    if (this.interception !== null) {
      for (const hint of await detectIptablesBypass()) {
        this.logger.warn({ hint }, "this node's CNI may bypass iptables PREROUTING: pods could reach IMDS without NMI (Cilium eBPF host routing defeats interception)");
      }
      await this.interception.ensure();
      if (config.enableConntrackDeletion) {
        const deleted = await this.interception.deleteConntrackEntries();
        this.logger.info({ deleted }, "stale conntrack entries to the metadata address deleted");
      }
      this.#verifyTimer = setInterval(() => void this.verifyInterception(), config.iptablesUpdateIntervalMs);
      this.#verifyTimer.unref();
    }
    this.#started = true;
    if (config.removeNodeTaint) {
      try {
        await removeStartupTaint(this.#options.kube, config.nodeName, this.logger);
      } catch (error) {
        this.logger.warn({ err: (error as Error).message }, "could not remove the node's startup taint (needs get/update on nodes)");
      }
    }
    this.logger.info(
      {
        url: this.url,
        ...(config.httpProbePort !== null && { probeUrl: this.probeUrl }),
        ...(config.prometheusPort !== null && { metricsUrl: this.metricsUrl }),
        mode: config.operationMode,
        forceNamespaced: config.forceNamespaced,
      },
      "NMI ready",
    );
  }

  /** One pass of the verify/repair loop (also run every `--ipt-update-interval-sec`). */
  async verifyInterception(): Promise<void> {
    const interception = this.interception;
    if (interception === null || this.#stopped) return;
    if (this.#verifying !== undefined) return this.#verifying;
    this.#verifying = (async () => {
      try {
        await interception.ensure();
        this.#interceptionError = undefined;
      } catch (error) {
        this.#interceptionError = (error as Error).message;
        this.logger.error({ err: this.#interceptionError }, "iptables rules could not be repaired; NMI is not ready");
      } finally {
        this.#verifying = undefined;
      }
    })();
    return this.#verifying;
  }

  /** Graceful shutdown: not ready, rules removed, requests in flight finish (bounded), informers stopped. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#verifyTimer);
    await this.#verifying;
    let failure: unknown;
    if (this.interception !== null && this.#started) {
      try {
        await this.interception.remove();
      } catch (error) {
        failure = error;
        this.logger.error({ err: (error as Error).message }, "removing the iptables rules failed");
      }
    }
    await this.#server.close(this.config.shutdownGraceMs);
    await Promise.all([this.pods.stop(), this.identities.stop(), this.#probes.close(), this.#metricsServer.close()]);
    if (this.#ownsAgent) this.#agent.destroy();
    if (failure !== undefined) throw failure;
  }
}
