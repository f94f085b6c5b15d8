import { Command, InvalidArgumentError } from "commander";
import { DEFAULT_NMI_OPTIONS, type NmiConfigInput, type OperationMode } from "./config";
import { NMI_VERSION } from "./version";

function bool(value: string | boolean | undefined): boolean {
  if (value === undefined || value === true) return true;
  if (value === false) return false;
  const v = value.trim().toLowerCase();
  if (["true", "1", "t", "yes"].includes(v)) return true;
  if (["false", "0", "f", "no"].includes(v)) return false;
  throw new InvalidArgumentError(`expected true or false, got "${value}"`);
}

function int(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`expected an integer, got "${value}"`);
  return n;
}

/** `20`, `20s`, `1500ms`, `1m` → milliseconds (pflag durations and plain seconds both work). */
function durationMs(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
  if (m === null) throw new InvalidArgumentError(`expected a duration like 20s, got "${value}"`);
  const n = Number(m[1]);
  return Math.round(m[2] === "ms" ? n : m[2] === "m" ? n * 60_000 : n * 1000);
}

export interface CliOptions {
  config: NmiConfigInput;
  kubeconfig: string | undefined;
  logLevel: string;
}

/**
 * `podidentity-nmi`'s flags, with aad-pod-identity v1.8's names where they exist (CONTRACT.md), parsed from the
 * given argv and env (main.ts passes process's). Commander handles `--help` and `--version` (and exits).
 */
export function parseCliOptions(argv: readonly string[], env: Record<string, string | undefined>): CliOptions {
  const d = DEFAULT_NMI_OPTIONS;
  const program = new Command("podidentity-nmi")
    .description("Node Managed Identity: answers pods' IMDS token requests with the identity bound to the pod")
    .version(NMI_VERSION, "--version")
    .option("--node <name>", "this node's name (default: env NODE_NAME)")
    .option("--kubeconfig <path>", "kubeconfig file (default: in-cluster config, then $KUBECONFIG)")
    .option("--nmi-listen-address <ip>", "address NMI listens on", d.listenAddress)
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
    .option("--ipt-update-interval-sec <seconds>", "how often the iptables rules are verified and repaired", int, d.iptablesUpdateIntervalMs / 1000)
    .option("--enable-conntrack-deletion [bool]", "delete conntrack entries to the metadata address at start", bool, d.enableConntrackDeletion)
    .option("--remove-node-taint [bool]", "remove the podidentity.io/nmi-not-ready:NoSchedule taint once interception is live", bool, d.removeNodeTaint)
    .option("--http-probe-port <port>", "port of /healthz and /readyz", int, d.httpProbePort)
    .option("--prometheus-port <port>", "port of /metrics", int, d.prometheusPort)
    .option("--kubelet-config <path>", "kubelet flags file checked for kubenet", d.kubeletConfigPath)
    .option("--allow-network-plugin-kubenet [bool]", "run on kubenet anyway", bool, d.allowNetworkPluginKubenet)
    .option("--token-cache [bool]", "cache tokens per identity and resource", bool, d.tokenCacheEnabled)
    .option("--log-level <level>", "pino log level", "info");
  program.parse([...argv], { from: "user" });
  const o = program.opts<Record<string, unknown>>();
  let forceNamespaced: boolean = d.forceNamespaced;
  if (o["forceNamespaced"] !== undefined) forceNamespaced = o["forceNamespaced"] as boolean;
  else if (env["FORCENAMESPACED"] !== undefined && env["FORCENAMESPACED"] !== "") forceNamespaced = bool(env["FORCENAMESPACED"]);
  return {
    kubeconfig: typeof o["kubeconfig"] === "string" ? o["kubeconfig"] : undefined,
    logLevel: String(o["logLevel"]),
    config: {
      nodeName: String(o["node"] ?? env["NODE_NAME"] ?? ""),
      listenAddress: o["nmiListenAddress"] as string,
      port: o["nmiPort"] as number,
      metadataIp: o["metadataIp"] as string,
      metadataPort: o["metadataPort"] as number,
      upstreamImds: o["upstreamImds"] as string,
      operationMode: o["operationMode"] as OperationMode,
      forceNamespaced,
      waitForAssignmentMs: o["waitForAssignment"] as number,
      metadataHeaderRequired: o["metadataHeaderRequired"] as boolean,
      blockInstanceMetadata: o["blockInstanceMetadata"] as boolean,
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
