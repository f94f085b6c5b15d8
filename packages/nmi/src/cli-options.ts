import { isIP } from "node:net";
import { forceNamespacedSetting, orUsageError, parseBool, parseDuration, parseInteger, takeLegacyFlags, type LegacyFlagNotice } from "@podidentity/daemon";
import { Command, InvalidArgumentError } from "commander";
import { DEFAULT_NMI_OPTIONS, type NmiConfigInput, type OperationMode } from "./config";
import { IMDS_ROUTE_OPT_INS, parseImdsRouteOptIns, type ImdsRouteOptIn } from "./server/proxy-allowlist";
import { NMI_VERSION } from "./version";

function parseImdsRouteOptInsFlag(value: string): ImdsRouteOptIn[] {
  try {
    return parseImdsRouteOptIns(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

/** Go durations (`20s`, `1m30s`, `1h`) or a bare number of seconds, rounded to whole milliseconds. */
function durationMs(value: string): number {
  return Math.round(parseDuration(value));
}

const bool = parseBool;
const int = parseInteger;

/**
 * The first IPv4 address of env HOST_IP, which may be a list (downward API `status.hostIPs`) or an IPv6 address
 * on an IPv6-first dual-stack node; without one NMI falls back to the Node's InternalIP.
 */
function firstIPv4(value: string | undefined): string | undefined {
  return value?.split(",").map((v) => v.trim()).find((v) => isIP(v) === 4);
}

export interface CliOptions {
  config: NmiConfigInput;
  kubeconfig: string | undefined;
  logLevel: string;
  /** aad-pod-identity v1.8 flags given that NMI maps or ignores: main.ts logs each once at startup. */
  legacyFlags: LegacyFlagNotice[];
}

/**
 * `podidentity-nmi`'s flags, with aad-pod-identity v1.8's names where they exist (docs/contract.md), parsed from the
 * given argv and env (main.ts passes process's). Commander handles `--help` and `--version` (and exits).
 */
export function parseCliOptions(argv: readonly string[], env: Record<string, string | undefined>): CliOptions {
  const d = DEFAULT_NMI_OPTIONS;
  const program = new Command("podidentity-nmi")
    .description("Node Managed Identity: answers pods' IMDS token requests with the identity bound to the pod")
    .version(NMI_VERSION, "--version")
    .option("--node <name>", "this node's name (default: env NODE_NAME)")
    .option("--pod-name <name>", "this NMI's pod, whose DaemonSet decides on SIGTERM whether the iptables rules stay (default: env POD_NAME)")
    .option("--pod-namespace <namespace>", "this NMI's pod's namespace (default: env POD_NAMESPACE)")
    .option("--kubeconfig <path>", "kubeconfig file (default: $KUBECONFIG, then in-cluster, then ~/.kube/config)")
    .option(
      "--nmi-listen-address <ip>",
      "IPv4 address NMI listens on: 0.0.0.0 DNATs pods to the node's own address (no route_localnet needed); 127.0.0.1 is v1.8's loopback DNAT (needs route_localnet=1); another address is listened on and DNATed to",
      d.listenAddress,
    )
    .option("--host-ip <ip>", "the node's IPv4 address, the DNAT target with --nmi-listen-address=0.0.0.0 (default: env HOST_IP, else the Node's InternalIP)")
    .option("--nmi-port <port>", "port NMI listens on", int, d.port)
    .option("--metadata-ip <ip>", "the metadata address pods call", d.metadataIp)
    .option("--metadata-port <port>", "the metadata port pods call", int, d.metadataPort)
    .option("--upstream-imds <url>", "the real IMDS NMI asks for tokens", d.upstreamImds)
    .option("--operation-mode <mode>", "standard (MIC assigns identities) or managed", d.operationMode)
    .option("--force-namespaced [bool]", "bindings and identities must be in the pod's namespace (env FORCENAMESPACED; default true)", bool)
    .option("--forceNamespaced [bool]", "v1.8 spelling of --force-namespaced", bool)
    .option("--wait-for-assignment <duration>", "how long a token request is held while its identity is assigned", durationMs, d.waitForAssignmentMs)
    .option("--metadata-header-required [bool]", "require the Metadata: true header", bool, d.metadataHeaderRequired)
    .option("--block-instance-metadata [bool]", "answer 403 to /metadata/instance", bool, d.blockInstanceMetadata)
    .option(
      "--allow-imds-routes <names>",
      `IMDS routes closed by default that NMI passes on (comma list of ${IMDS_ROUTE_OPT_INS.join(", ")})`,
      parseImdsRouteOptInsFlag,
      [...d.allowImdsRoutes],
    )
    .option("--max-connections <n>", "open connections at most; at the cap a new one evicts the connection idle the longest", int, d.maxConnections)
    .option("--idle-connection-timeout <duration>", "close connections that send no request within this time", durationMs, d.idleConnectionTimeoutMs)
    .option("--host-token-service-principals [bool]", "let /host/token serve service-principal identities (types 1 and 2)", bool, d.hostTokenServicePrincipals)
    .option("--ipt-update-interval-sec <seconds>", "how often the iptables rules are verified and repaired", int, d.iptablesUpdateIntervalMs / 1000)
    .option("--enable-conntrack-deletion [bool]", "delete conntrack entries to the metadata address at start", bool, d.enableConntrackDeletion)
    .option("--remove-node-taint [bool]", "remove the podidentity.io/nmi-not-ready:NoSchedule taint once interception is live", bool, d.removeNodeTaint)
    .option("--http-probe-port <port>", "port of /healthz and /readyz", int, d.httpProbePort)
    .option("--prometheus-port <port>", "port of /metrics", int, d.prometheusPort)
    .option("--kubelet-config <path>", "kubelet flags file checked for kubenet", d.kubeletConfigPath)
    .option("--allow-network-plugin-kubenet [bool]", "run on kubenet anyway", bool, d.allowNetworkPluginKubenet)
    .option("--token-cache [bool]", "cache tokens per identity and resource", bool, d.tokenCacheEnabled)
    .option("--log-level <level>", "pino log level (default: info, or what klog's -v given by v1.8 manifests maps to)")
    .addHelpText("after", `\nCommands:\n  ${CLEANUP_COMMAND}  remove NMI's iptables rules from this node and exit (uninstall; see ${CLEANUP_COMMAND} --help)`);
  // v1.8's flags NMI has no flag of that name for (klog's, --MICNamespace, the retry counts …): mapped or ignored,
  // never a crash-loop after a migration (@podidentity/daemon's legacy-flags.ts lists them with the reasons).
  const legacy = orUsageError(program, () => takeLegacyFlags(argv, "nmi"));
  program.parse(legacy.args, { from: "user" });
  const o = program.opts<Record<string, unknown>>();
  const forceNamespaced = orUsageError(program, () => forceNamespacedSetting(o["forceNamespaced"] as boolean | undefined, env, d.forceNamespaced));
  return {
    kubeconfig: typeof o["kubeconfig"] === "string" ? o["kubeconfig"] : undefined,
    logLevel: typeof o["logLevel"] === "string" ? o["logLevel"] : (legacy.logLevel ?? "info"),
    legacyFlags: legacy.notices,
    config: {
      nodeName: String(o["node"] ?? env["NODE_NAME"] ?? ""),
      ...optionalString("podName", o["podName"] ?? env["POD_NAME"]),
      ...optionalString("podNamespace", o["podNamespace"] ?? env["POD_NAMESPACE"]),
      listenAddress: o["nmiListenAddress"] as string,
      hostIp: typeof o["hostIp"] === "string" ? o["hostIp"] : firstIPv4(env["HOST_IP"]),
      port: o["nmiPort"] as number,
      metadataIp: o["metadataIp"] as string,
      metadataPort: o["metadataPort"] as number,
      upstreamImds: o["upstreamImds"] as string,
      operationMode: o["operationMode"] as OperationMode,
      forceNamespaced,
      waitForAssignmentMs: o["waitForAssignment"] as number,
      metadataHeaderRequired: o["metadataHeaderRequired"] as boolean,
      blockInstanceMetadata: o["blockInstanceMetadata"] as boolean,
      allowImdsRoutes: o["allowImdsRoutes"] as ImdsRouteOptIn[],
      maxConnections: o["maxConnections"] as number,
      idleConnectionTimeoutMs: o["idleConnectionTimeout"] as number,
      hostTokenServicePrincipals: o["hostTokenServicePrincipals"] as boolean,
      iptablesUpdateIntervalMs: (o["iptUpdateIntervalSec"] as number) * 1000,
      enableConntrackDeletion: o["enableConntrackDeletion"] as boolean,
      removeNodeTaint: o["removeNodeTaint"] as boolean,
      httpProbePort: o["httpProbePort"] as number,
      prometheusPort: o["prometheusPort"] as number,
      kubeletConfigPath: o["kubeletConfig"] as string,
      allowNetworkPluginKubenet: o["allowNetworkPluginKubenet"] as boolean,
      tokenCacheEnabled: o["tokenCache"] as boolean,
    },
  };
}

function optionalString<K extends string>(key: K, value: unknown): { [P in K]?: string } {
  return typeof value === "string" && value !== "" ? ({ [key]: value } as { [P in K]?: string }) : {};
}

/** `podidentity-nmi cleanup`: the one subcommand. */
export const CLEANUP_COMMAND = "cleanup";

export interface CleanupCliOptions {
  logLevel: string;
}

/** Whether argv asks for `podidentity-nmi cleanup`. */
export function isCleanupCommand(argv: readonly string[]): boolean {
  return argv[0] === CLEANUP_COMMAND;
}

/** `podidentity-nmi cleanup`'s flags (argv after the word `cleanup`). Commander handles `--help` (and exits). */
export function parseCleanupOptions(argv: readonly string[]): CleanupCliOptions {
  const program = new Command(`podidentity-nmi ${CLEANUP_COMMAND}`)
    .description(
      "Remove NMI's iptables rules from this node's network namespace — every jump to the aad-metadata chains and the chains, " +
        "in the nat and filter tables, with iptables-nft and iptables-legacy — and exit 0. Idempotent; needs no API server. " +
        "Run it as root with NET_ADMIN in the node's network namespace (a privileged hostNetwork pod, or kubectl debug node/<name>).",
    )
    .option("--log-level <level>", "pino log level", "info");
  program.parse([...argv], { from: "user" });
  return { logLevel: String(program.opts<Record<string, unknown>>()["logLevel"]) };
}
