import { isIP } from "node:net";
import { parseImdsRouteOptIns, type ImdsRouteOptIn } from "./server/proxy-allowlist";

export type OperationMode = "standard" | "managed";

/**
 * Every NMI default, in one place, units in the names. Flag names (main.ts) follow aad-pod-identity v1.8 where
 * one exists; the values differ from v1.8 only where docs/contract.md says so (namespaced matching, 20 s hold).
 */
export const DEFAULT_NMI_OPTIONS = {
  /**
   * Every IPv4 address: pods' metadata traffic is DNATed to the node's own address and the port is guarded by
   * the filter chain (interception/iptables-manager.ts), so no `route_localnet` is needed. A loopback address
   * selects aad-pod-identity v1.8's loopback DNAT. When NMI does not install its own interception (option
   * `interception` given), the default is 127.0.0.1: nothing would guard the port.
   */
  listenAddress: "0.0.0.0",
  port: 2579,
  metadataIp: "169.254.169.254",
  metadataPort: 80,
  upstreamImds: "http://169.254.169.254",
  operationMode: "standard" as OperationMode,
  forceNamespaced: true,
  metadataHeaderRequired: true,
  blockInstanceMetadata: false,
  /** `/host/token` serves service principals (types 1 and 2) only when allowed: any loopback caller can name any pod. */
  hostTokenServicePrincipals: false,
  /** How long a token request is held while its assignment completes (v1.8: 80–100 s). */
  waitForAssignmentMs: 20_000,
  /** After Assigned, an upstream "Identity not found" counts as pending for this long. */
  propagationGraceMs: 60_000,
  /** How long an unknown source IP waits for the pod informer before 503 podidentity_pod_unknown. */
  podWaitMs: 2_000,
  /** Retry-After seconds on 503s. */
  retryAfterSeconds: 5,
  iptablesUpdateIntervalMs: 60_000,
  httpProbePort: 8085,
  prometheusPort: 9090,
  kubeletConfigPath: "/etc/default/kubelet",
  allowNetworkPluginKubenet: false,
  enableConntrackDeletion: false,
  removeNodeTaint: true,
  /** Token cache: refresh ahead of expiry, starting at min(half-life, expiry − window). */
  tokenRefreshWindowMs: 5 * 60_000,
  tokenCacheMaxEntries: 10_000,
  tokenCacheEnabled: true,
  /**
   * IMDS's Managed Identity category allows 20 requests/s and 5 concurrent per VM. NMI paces at 18/s: a stream
   * paced exactly at the limit gets 429s from network and scheduling jitter alone, and hostNetwork pods and node
   * agents share the same budget.
   */
  upstreamRequestsPerSecond: 18,
  upstreamMaxConcurrent: 5,
  /** How long a call queues for the upstream limiter before 503 podidentity_upstream_unavailable. */
  upstreamQueueTimeoutMs: 10_000,
  upstreamConnectTimeoutMs: 2_000,
  /** IMDS's SLA is 10 s; an answer slower than this is treated as unavailable. */
  upstreamTimeoutMs: 15_000,
  /** Incoming requests: whole-request deadline, header size bound, proxied body bound. */
  requestTimeoutMs: 30_000,
  headersTimeoutMs: 10_000,
  maxHeaderBytes: 16 * 1024,
  maxProxyBodyBytes: 1024 * 1024,
  shutdownGraceMs: 5_000,
  /**
   * Proxy routes closed by default that the operator opens (`--allow-imds-routes`): user-data,
   * attested-document, scheduled-events-ack (server/proxy-allowlist.ts).
   */
  allowImdsRoutes: [] as readonly ImdsRouteOptIn[],
  /**
   * Proxied requests: IMDS allows 5 requests/s per VM outside the identity category. The node-wide bucket
   * (3/s, burst 2) lets at most 5 through in any one second and 3/s sustained, leaving room for node agents;
   * each pod gets 1/s with a burst of 2, so one pod cannot take the node's share.
   */
  proxyRequestsPerSecondPerPod: 1,
  proxyBurstPerPod: 2,
  proxyRequestsPerSecond: 3,
  proxyBurst: 2,
  proxyMaxTrackedPods: 1024,
  /**
   * Open connections at most; at the cap a new connection evicts the one idle the longest
   * (server/connection-guard.ts). A node runs ~250 pods at most; each SDK keeps one or two connections.
   */
  maxConnections: 1024,
  /** A connection that sends no complete request head within this time of connecting is closed. */
  idleConnectionTimeoutMs: 15_000,
  /**
   * On SIGTERM, how long NMI may take reading its DaemonSet and node to decide whether to remove its iptables
   * rules; past it the rules stay (fail closed). Well inside the DaemonSet's 30 s termination grace period.
   */
  ownershipTimeoutMs: 5_000,
} as const;

/** Options of {@link Nmi}. `nodeName` is the only required one. */
export interface NmiConfig {
  nodeName: string;
  listenAddress: string;
  port: number;
  metadataIp: string;
  metadataPort: number;
  upstreamImds: string;
  operationMode: OperationMode;
  forceNamespaced: boolean;
  metadataHeaderRequired: boolean;
  blockInstanceMetadata: boolean;
  hostTokenServicePrincipals: boolean;
  waitForAssignmentMs: number;
  propagationGraceMs: number;
  podWaitMs: number;
  retryAfterSeconds: number;
  iptablesUpdateIntervalMs: number;
  /** Probe and metrics ports; 0 picks a free port, null disables the listener. */
  httpProbePort: number | null;
  prometheusPort: number | null;
  kubeletConfigPath: string;
  allowNetworkPluginKubenet: boolean;
  enableConntrackDeletion: boolean;
  removeNodeTaint: boolean;
  tokenRefreshWindowMs: number;
  tokenCacheMaxEntries: number;
  tokenCacheEnabled: boolean;
  upstreamRequestsPerSecond: number;
  upstreamMaxConcurrent: number;
  upstreamQueueTimeoutMs: number;
  upstreamConnectTimeoutMs: number;
  upstreamTimeoutMs: number;
  requestTimeoutMs: number;
  headersTimeoutMs: number;
  maxHeaderBytes: number;
  maxProxyBodyBytes: number;
  shutdownGraceMs: number;
  allowImdsRoutes: readonly ImdsRouteOptIn[];
  proxyRequestsPerSecondPerPod: number;
  proxyBurstPerPod: number;
  proxyRequestsPerSecond: number;
  proxyBurst: number;
  proxyMaxTrackedPods: number;
  maxConnections: number;
  idleConnectionTimeoutMs: number;
  /**
   * The node's own IPv4 address, the DNAT target when NMI listens on 0.0.0.0 (flag --host-ip, env HOST_IP);
   * default: the Node object's InternalIP.
   */
  hostIp?: string;
  ownershipTimeoutMs: number;
  /**
   * This NMI's pod (downward API, env POD_NAME / POD_NAMESPACE): its controller ownerReference names the
   * DaemonSet NMI reads on SIGTERM. Without them NMI cannot tell a restart from an uninstall and keeps its rules.
   */
  podName?: string;
  podNamespace?: string;
  /**
   * Source addresses that are the node itself (403 podidentity_host_network). Default: 127.0.0.1, ::1 and every
   * address of the node's interfaces other than the rest of 127.0.0.0/8.
   */
  nodeAddresses?: readonly string[];
}

export type NmiConfigInput = Partial<NmiConfig> & Pick<NmiConfig, "nodeName">;

function positive(name: string, value: number, allowZero = false): void {
  if (!Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new RangeError(`Nmi: ${name} must be a ${allowZero ? "non-negative" : "positive"} number, got ${value}`);
  }
}

function port(name: string, value: number | null, allowNull = false): void {
  if (value === null && allowNull) return;
  if (value === null || !Number.isInteger(value) || value < 0 || value > 65535) {
    throw new RangeError(`Nmi: ${name} must be a port number 0-65535${allowNull ? " or null" : ""}, got ${value}`);
  }
}

/** Fills in defaults and validates; throws RangeError/TypeError naming the option. */
export function resolveNmiConfig(input: NmiConfigInput): NmiConfig {
  const config = { ...DEFAULT_NMI_OPTIONS, ...stripUndefined(input) } as NmiConfig;
  if (typeof config.nodeName !== "string" || config.nodeName.trim() === "") {
    throw new TypeError("Nmi: nodeName is required (flag --node, usually from the downward API spec.nodeName)");
  }
  if (config.operationMode !== "standard" && config.operationMode !== "managed") {
    throw new RangeError(`Nmi: operationMode must be "standard" or "managed", got "${String(config.operationMode)}"`);
  }
  if (config.operationMode === "managed" && !config.forceNamespaced) {
    // v1.8 refused this combination too: in managed mode nothing else enforces namespace boundaries.
    throw new RangeError("Nmi: operationMode managed requires forceNamespaced (--force-namespaced=true)");
  }
  if (isIP(config.listenAddress) !== 4) {
    // IPv4 only: the metadata address is IPv4, and an IPv6 listener would be reachable around the IPv4 port guard.
    throw new TypeError(`Nmi: listenAddress (--nmi-listen-address) must be an IPv4 address (0.0.0.0, 127.0.0.1 or the node's), got "${config.listenAddress}"`);
  }
  if (config.hostIp !== undefined && isIP(config.hostIp) !== 4) throw new TypeError(`Nmi: hostIp (--host-ip) must be the node's IPv4 address, got "${config.hostIp}"`);
  if (isIP(config.metadataIp) !== 4) throw new TypeError(`Nmi: metadataIp must be an IPv4 address, got "${config.metadataIp}"`);
  port("port", config.port);
  port("metadataPort", config.metadataPort);
  port("httpProbePort", config.httpProbePort, true);
  port("prometheusPort", config.prometheusPort, true);
  let upstream: URL;
  try {
    upstream = new URL(config.upstreamImds);
  } catch (cause) {
    throw new TypeError(`Nmi: upstreamImds must be an http(s) URL, got "${config.upstreamImds}"`, { cause });
  }
  if (upstream.protocol !== "http:" && upstream.protocol !== "https:") {
    throw new TypeError(`Nmi: upstreamImds must be an http(s) URL, got "${config.upstreamImds}"`);
  }
  for (const key of [
    "waitForAssignmentMs",
    "propagationGraceMs",
    "podWaitMs",
    "retryAfterSeconds",
    "tokenRefreshWindowMs",
    "upstreamQueueTimeoutMs",
    "shutdownGraceMs",
  ] as const) {
    positive(key, config[key], true);
  }
  for (const key of [
    "iptablesUpdateIntervalMs",
    "tokenCacheMaxEntries",
    "upstreamRequestsPerSecond",
    "upstreamMaxConcurrent",
    "upstreamConnectTimeoutMs",
    "upstreamTimeoutMs",
    "requestTimeoutMs",
    "headersTimeoutMs",
    "maxHeaderBytes",
    "maxProxyBodyBytes",
    "proxyRequestsPerSecondPerPod",
    "proxyBurstPerPod",
    "proxyRequestsPerSecond",
    "proxyBurst",
    "proxyMaxTrackedPods",
    "maxConnections",
    "idleConnectionTimeoutMs",
    "ownershipTimeoutMs",
  ] as const) {
    positive(key, config[key]);
  }
  if (!Number.isInteger(config.maxConnections)) throw new RangeError(`Nmi: maxConnections (--max-connections) must be an integer, got ${config.maxConnections}`);
  if (config.proxyBurst < 1 || config.proxyBurstPerPod < 1) throw new RangeError("Nmi: proxyBurst and proxyBurstPerPod must be at least 1 (one request)");
  config.allowImdsRoutes = parseImdsRouteOptIns(config.allowImdsRoutes);
  if (config.nodeAddresses !== undefined) {
    for (const a of config.nodeAddresses) if (isIP(a) === 0) throw new TypeError(`Nmi: nodeAddresses has "${a}", not an IP address`);
  }
  return config;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
