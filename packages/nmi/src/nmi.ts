import { networkInterfaces } from "node:os";
import { IDENTITY_TYPE, nameOf, namespaceOf, type AzureIdentity } from "@podidentity/api";
import pino, { type Logger } from "pino";
import { HttpAgent } from "./http-request";
import { resolveNmiConfig, type NmiConfig, type NmiConfigInput } from "./config";
import { redactId } from "./errors";
import { IdentityResolver } from "./identity/identity-resolver";
import { IdentityStore } from "./identity/identity-store";
import { execRunner } from "./interception/command-runner";
import { resolveDnatTarget } from "./interception/dnat-target";
import { IptablesManager } from "./interception/iptables-manager";
import { checkNetworkPlugin, detectIptablesBypass } from "./interception/network-plugin-check";
import { removeStartupTaint } from "./interception/node-taint";
import { InterceptionOwnership, type InterceptionDecision } from "./interception/ownership";
import { listenWhenFree } from "./interception/port-handover";
import type { KubeClient } from "@podidentity/kube";
import { NmiMetrics } from "./metrics";
import { PodCache } from "./pods/pod-cache";
import { OpsServer, readinessBody, type ReadinessReport } from "./probes";
import { NmiServer } from "./server/nmi-server";
import { TokenHandler } from "./server/token-handler";
import { RefusalLog } from "./server/refusal-log";
import { UpstreamProxy } from "./server/upstream-proxy";
import { EntraTokenSource } from "./token/entra-token-source";
import { ImdsTokenSource } from "./token/imds-token-source";
import { TokenCache } from "./token/token-cache";
import { UpstreamLimiter } from "./token/upstream-limiter";

/**
 * What `stop()` does with the iptables rules: `decide` asks the owning DaemonSet (InterceptionOwnership; what
 * SIGTERM does), `keep` and `remove` are explicit.
 */
export type InterceptionOnStop = "decide" | "keep" | "remove";

/** What `stop()` did with the interception, and why. */
export interface StopReport {
  interception: "removed" | "kept" | "none";
  /** The decision's reason code (InterceptionDecision), `requested` for an explicit keep/remove, `none` without interception. */
  reason: string;
  detail: string;
}

export interface NmiOptions extends NmiConfigInput {
  /** The API server (@podidentity/kube: KubeClient.load(), KubeClient.fromKubeconfig(...)). */
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
 * IMDS-compatible server, composed. `start()` brings it up in dependency order and `stop()` tears it down,
 * keeping the iptables rules unless its DaemonSet is gone or no longer targets the node (fail closed across
 * restarts). Everything external comes in through options, so tests run it in-process against
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
  /** Whether this node keeps interception when NMI stops (its owning DaemonSet). */
  readonly ownership: InterceptionOwnership;
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
  /** Whether the IMDS listener is bound (false while another process holds the port: port-handover.ts). */
  #listening = false;
  readonly #stopWaiting = new AbortController();
  /** The probe or metrics listener still waiting for its port (#listenOps). */
  readonly #opsWaiting = new Set<"probe" | "metrics">();
  /** The verify pass in flight: stop() waits for it, or it could re-install the rules stop() just removed. */
  #verifying: Promise<void> | undefined;

  constructor(options: NmiOptions) {
    this.#options = options;
    // NMI listens on every address only behind the port guard it installs itself (interception/iptables-manager.ts).
    const listenDefault = options.interception !== undefined && options.listenAddress === undefined ? { listenAddress: "127.0.0.1" } : {};
    this.config = resolveNmiConfig({ ...options, ...listenDefault });
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
    const refusals = new RefusalLog({
      logger: this.logger,
      now: this.#now,
      podOf: (ip) => {
        const found = this.pods.lookup(ip);
        return found.kind === "unknown" ? undefined : `${namespaceOf(found.pod)}/${nameOf(found.pod)}`;
      },
    });
    this.#server = new NmiServer({ config, handler, proxy, metrics: this.metrics, logger: this.logger, refusals });
    const targetIp = async (): Promise<string> => {
      const target = await resolveDnatTarget({
        listenAddress: config.listenAddress,
        hostIp: config.hostIp,
        nodeName: config.nodeName,
        kube: options.kube,
        isNodeAddress: (ip) => this.#nodeAddresses.has(ip),
      });
      this.logger.info({ target: target.ip, from: target.source, listen: config.listenAddress }, "interception DNAT target chosen");
      return target.ip;
    };
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
    this.ownership = new InterceptionOwnership({
      client: options.kube,
      nodeName: config.nodeName,
      podName: config.podName,
      podNamespace: config.podNamespace,
      timeoutMs: config.ownershipTimeoutMs,
      logger: this.logger,
    });
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
      listener: this.#listening,
      "informer-pods": this.pods.synced,
      "informer-identities": this.identities.synced,
    };
    return { ready: this.#started && !this.#stopped && Object.values(checks).every(Boolean), checks };
  }

  /**
   * Brings NMI up: network plugin guard, probe listeners (they answer while the rest starts), the iptables guards
   * (fatal when they fail), informers synced, the IMDS listener (waiting while another process holds the port),
   * the nat redirect (fatal when it fails) and stale conntrack entries deleted, the node's startup taint removed.
   */
  async start(): Promise<void> {
    const { config } = this;
    if (this.#options.checkNetworkPlugin !== false) {
      await checkNetworkPlugin({ kubeletConfigPath: config.kubeletConfigPath, allowKubenet: config.allowNetworkPluginKubenet, logger: this.logger });
    }
    if (config.httpProbePort !== null) await this.#listenOps(this.#probes, config.httpProbePort, "probe");
    if (config.prometheusPort !== null) await this.#listenOps(this.#metricsServer, config.prometheusPort, "metrics");
    // The guards before the listener: NMI may listen on every address only once its port is guarded, and pods'
    // metadata traffic that no DNAT sends anywhere is refused, never answered by IMDS. The informers sync before NMI
    // listens: a redirect left by the NMI this one replaces (a restart keeps interception) already sends pods here,
    // and an NMI that knew the pods but not yet the bindings would answer them a wrong 403; until it listens, their
    // connections are refused, which the SDK retries. The nat redirect only once NMI listens: until then the port
    // may be another NMI's (aad-pod-identity v1.8's, port-handover.ts), whose redirect is left alone.
    const interception = this.interception;
    if (interception !== null) {
      for (const hint of await detectIptablesBypass()) {
        this.logger.warn({ hint }, "this node's CNI may bypass iptables PREROUTING: pods could reach IMDS without NMI (Cilium eBPF host routing defeats interception)");
      }
      interception.redirect = false;
      await interception.ensure();
      this.#verifyTimer = setInterval(() => void this.verifyInterception(), config.iptablesUpdateIntervalMs);
      this.#verifyTimer.unref();
    }
    try {
      await Promise.all([this.pods.start(), this.identities.start()]);
    } catch (error) {
      if (!this.#stopped) throw error;
    }
    if (this.#stopped) {
      this.logger.info("stopped before the informers synced");
      return;
    }
    const { listening, busyAttempts } = await listenWhenFree(() => this.#server.listen(), {
      signal: this.#stopWaiting.signal,
      onWaiting: () => {
        this.metrics.listenerWaiting.set(1);
        this.logger.warn(
          { port: config.port, listen: config.listenAddress },
          `another process holds port ${config.port}, e.g. aad-pod-identity v1.8's NMI; waiting for it; pods' metadata traffic stays with it, and is refused if it removes its redirect`,
        );
      },
    });
    this.metrics.listenerWaiting.set(0);
    if (!listening) {
      this.logger.info({ port: config.port }, "stopped while waiting for the port");
      return;
    }
    this.#listening = true;
    if (busyAttempts > 0) this.logger.info({ port: config.port, busyAttempts }, "the port is free: listening, and taking over the metadata redirect");
    // The redirect last: until NMI can tell pods apart, their metadata traffic is refused by the guard (a TCP reset
    // the SDK retries), never answered with a wrong 403 or by IMDS.
    if (interception !== null) {
      await this.#verifying; // a guard-only pass of the loop must not run alongside the install
      interception.redirect = true;
      const installing = interception.ensure();
      this.#verifying = installing.then(
        () => undefined,
        () => undefined,
      );
      try {
        await installing;
      } finally {
        this.#verifying = undefined;
      }
      if (config.enableConntrackDeletion) {
        const deleted = await interception.deleteConntrackEntries();
        this.logger.info({ deleted }, "stale conntrack entries to the metadata address deleted");
      }
    }
    this.#started = true;
    // In the background: a slow API server must not delay readiness; decide() looks again if this has not finished.
    if (this.interception !== null) void this.#findOwner();
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
        ...(config.httpProbePort !== null && !this.#opsWaiting.has("probe") && { probeUrl: this.probeUrl }),
        ...(config.prometheusPort !== null && !this.#opsWaiting.has("metrics") && { metricsUrl: this.metricsUrl }),
        mode: config.operationMode,
        forceNamespaced: config.forceNamespaced,
      },
      "NMI ready",
    );
  }

  /**
   * The probe or metrics listener. aad-pod-identity v1.8's NMI holds the same default ports (8085, 9090) on the
   * node until it stops: NMI then logs once and carries on while it retries in the background (port-handover.ts);
   * exiting would crash-loop, and leave the node without NMI's guard once v1.8's NMI removes its redirect. Until
   * NMI has the port, whatever connects to it (the kubelet's probes, Prometheus) reaches the holder. Any other
   * listen error is fatal, as before.
   */
  async #listenOps(server: OpsServer, port: number, listener: "probe" | "metrics"): Promise<void> {
    let held!: () => void;
    const waitingStarted = new Promise<void>((resolve) => (held = resolve));
    const waiting = listenWhenFree(() => server.listen(port, "0.0.0.0"), {
      signal: this.#stopWaiting.signal,
      onWaiting: () => {
        this.#opsWaiting.add(listener);
        this.logger.warn(
          { port, listener },
          `another process holds NMI's ${listener} port ${port}, e.g. aad-pod-identity v1.8's NMI; carrying on, and listening there once it is free (until then, what connects to the port reaches that process)`,
        );
        held();
      },
    });
    await Promise.race([waiting, waitingStarted]);
    void waiting.then(
      async ({ listening, busyAttempts }) => {
        this.#opsWaiting.delete(listener);
        if (listening && this.#stopped) return server.close(); // free at the moment stop() had closed the others
        if (!listening) return this.logger.info({ port, listener }, `stopped while waiting for NMI's ${listener} port`);
        if (listening && busyAttempts > 0) this.logger.info({ port, listener, busyAttempts }, `NMI's ${listener} port is free: listening`);
      },
      (error: unknown) => this.logger.error({ port, listener, err: (error as Error).message }, `NMI's ${listener} listener failed while waiting for its port`),
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

  /**
   * Looks up the owning DaemonSet while the API is surely reachable, so SIGTERM needs one GET less (and still
   * knows it if the pod object is force-deleted first). A failure is retried at stop.
   */
  async #findOwner(): Promise<void> {
    try {
      const owner = await this.ownership.resolveOwner();
      if (owner !== undefined) this.logger.info({ daemonSet: `${owner.namespace}/${owner.name}` }, "owning DaemonSet found: it decides whether the iptables rules outlive NMI");
      else this.logger.info({ pod: this.config.podName ?? null }, "no owning DaemonSet known: NMI keeps its iptables rules when it stops (remove them with `podidentity-nmi cleanup`)");
    } catch (error) {
      this.logger.warn({ err: (error as Error).message }, "could not read NMI's own pod to find its DaemonSet (needs get on pods); retried at shutdown");
    }
  }

  /**
   * Graceful shutdown: not ready, requests in flight finish (bounded), informers stopped. The iptables rules stay
   * (pods' metadata requests are then refused, never answered by the node's IMDS) unless `interception` is
   * `remove`, or `decide` (the default) finds the DaemonSet deleted or no longer targeting this node.
   */
  async stop(options: { interception?: InterceptionOnStop } = {}): Promise<StopReport> {
    if (this.#stopped) return { interception: "none", reason: "none", detail: "already stopped" };
    this.#stopped = true;
    this.#stopWaiting.abort();
    clearInterval(this.#verifyTimer);
    await this.#verifying;
    let failure: unknown;
    let report: StopReport = { interception: "none", reason: "none", detail: "no interception" };
    // Also when stopped while waiting for the port: the guards are installed then (the redirect is not ours to remove).
    if (this.interception !== null && (this.#started || this.interception.installed)) {
      const wanted = options.interception ?? "decide";
      const decision: InterceptionDecision | { action: "keep" | "remove"; reason: "requested"; detail: string } =
        wanted === "decide" ? await this.ownership.decide() : { action: wanted, reason: "requested", detail: `stop({ interception: "${wanted}" })` };
      this.logger.info(
        { interception: decision.action, reason: decision.reason, detail: decision.detail },
        decision.action === "remove" ? "shutdown: removing the iptables rules" : "shutdown: keeping the iptables rules (pods' metadata requests are refused until NMI is back)",
      );
      report = { interception: decision.action === "remove" ? "removed" : "kept", reason: decision.reason, detail: decision.detail };
      if (decision.action === "remove") {
        try {
          await this.interception.remove();
        } catch (error) {
          failure = error;
          this.logger.error({ err: (error as Error).message }, "removing the iptables rules failed (run `podidentity-nmi cleanup` on the node)");
        }
      }
    }
    await this.#server.close(this.config.shutdownGraceMs);
    await Promise.all([this.pods.stop(), this.identities.stop(), this.#probes.close(), this.#metricsServer.close()]);
    if (this.#ownsAgent) this.#agent.destroy();
    if (failure !== undefined) throw failure;
    return report;
  }
}
