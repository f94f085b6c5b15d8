// One NMI in its own process for the benchmark (so its RSS is its own), configured by env NMI_BENCH (JSON).
// Interception is off: the load generator calls NMI's listener directly, from per-pod source addresses.
import { getHeapSpaceStatistics } from "node:v8";
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
  /** Any other Nmi options (the abuse bench passes none: it measures the defaults). */
  extra?: Record<string, unknown>;
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
  ...config.extra,
});
await nmi.start();
process.stdout.write(`${JSON.stringify({ url: nmi.url })}\n`);
// `kill -USR2 <pid>`: where NMI's memory is (V8 heap, external buffers, the rest is native), for finding what grows.
process.on("SIGUSR2", () => {
  const heapSpacesMb = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, Math.round(s.space_size / 1048576)]));
  process.stderr.write(`${JSON.stringify({ memory: process.memoryUsage(), heapSpacesMb })}\n`);
});
process.on("SIGTERM", () => {
  void nmi.stop().finally(() => process.exit(0));
});
