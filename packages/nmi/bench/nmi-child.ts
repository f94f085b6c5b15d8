// One NMI in its own process for the benchmark (so its RSS is its own), configured by env NMI_BENCH (JSON).
// Interception is off: the load generator calls NMI's listener directly, from per-pod source addresses.
import pino from "pino";
import { KubeClient, Nmi } from "../src/index";

interface ChildConfig {
  kubeconfig: string;
  nodeName: string;
  upstreamImds: string;
  tokenCacheEnabled: boolean;
  nodeAddresses: string[];
  upstreamRequestsPerSecond?: number;
  upstreamMaxConcurrent?: number;
}

const config = JSON.parse(process.env["NMI_BENCH"] ?? "{}") as ChildConfig;
const nmi = new Nmi({
  kube: KubeClient.fromKubeconfig(config.kubeconfig),
  nodeName: config.nodeName,
  port: 0,
  httpProbePort: null,
  prometheusPort: null,
  upstreamImds: config.upstreamImds,
  interception: null,
  checkNetworkPlugin: false,
  removeNodeTaint: false,
  collectDefaultMetrics: process.env["NMI_BENCH_DEFAULT_METRICS"] !== "0",
  tokenCacheEnabled: config.tokenCacheEnabled,
  nodeAddresses: config.nodeAddresses,
  ...(config.upstreamRequestsPerSecond !== undefined && { upstreamRequestsPerSecond: config.upstreamRequestsPerSecond }),
  ...(config.upstreamMaxConcurrent !== undefined && { upstreamMaxConcurrent: config.upstreamMaxConcurrent }),
  logger: pino({ level: "error" }),
});
await nmi.start();
process.stdout.write(`${JSON.stringify({ url: nmi.url })}\n`);
process.on("SIGTERM", () => {
  void nmi.stop().finally(() => process.exit(0));
});
