/**
 * What an `E2eCluster` is made of: who calls the API server, the programs it runs, its defaults.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { Taint, TopologyNode } from "@podidentity/testbed";

/** Who calls the API server: the request log attributes each verb to one of these. */
export const CLUSTER_USERS = {
  admin: "kubernetes-admin",
  mic: "system:serviceaccount:kube-system:podidentity-mic",
  nmi: "system:serviceaccount:kube-system:podidentity-nmi",
  kubelet: "system:node:podidentity-testbed",
} as const;

/** NMI's startup taint (`--remove-node-taint`), which NMI removes once its iptables rules are live. */
export const NMI_NOT_READY_TAINT: Taint = { key: "podidentity.io/nmi-not-ready", effect: "NoSchedule" };

export const DEFAULT_E2E_CLUSTER_OPTIONS = {
  nodeCount: 1,
  /** AKS names: scale set `aks-<pool>-<hash>-vmss`, nodes `<scale set>00000<i>`. */
  scaleSetName: "aks-nodepool1-12345678-vmss",
  vaultName: "podid-demo-kv",
  /** ARM's VMSS update (an LRO) and IMDS propagation, scaled down from Azure's 30–60 s and ~10 s. */
  operationDurationMs: 1_000,
  propagationDelayMs: 500,
  /** Create the nodes with NMI's startup taint, so no pod lands before interception is live. */
  startupTaint: true,
  startMic: true,
  startNmi: true,
  /** Extra NMI flags for every node. */
  nmiArgs: [] as readonly string[],
  /** Every node's `route_localnet` (0: a node no kube-proxy touched, as with Cilium), or inherited from the harness. */
  routeLocalnet: "inherit" as 0 | 1 | "inherit",
  /** Run NMI with /proc/sys read-only, as the DaemonSet's non-privileged container sees it. */
  nmiReadOnlyProcSys: false,
  micArgs: [] as readonly string[],
  /** Deadline for a component to become ready. */
  readyTimeoutMs: 30_000,
  /** Copy component logs to files in the work directory. */
  logToFiles: true,
  /** How NMI and MIC are run: `node dist/main.js` (images.netns.ts runs them from their images with crun instead). */
  runner: ((launch) => ({ command: process.execPath, args: [PROGRAMS[launch.component](), ...launch.args] })) as ComponentRunner,
} as const;

/** One start of NMI or MIC, as the harness would run it in `node`'s network namespace. */
export interface ComponentLaunch {
  component: "nmi" | "mic";
  /** Unique per start, e.g. `nmi@<node>-2`, `mic-0-1`. */
  instance: string;
  node: TopologyNode;
  /** The program's arguments (without `dist/main.js`). */
  args: readonly string[];
  /** The environment its pod would give it (NODE_NAME, POD_NAME, NODE_EXTRA_CA_CERTS…). */
  env: Record<string, string>;
}

/** The command (and its arguments) the harness spawns in the node's network namespace for `launch`. */
export type ComponentRunner = (launch: ComponentLaunch) => { command: string; args: readonly string[] };

export interface E2eClusterOptions {
  nodeCount?: number;
  scaleSetName?: string;
  vaultName?: string;
  operationDurationMs?: number;
  propagationDelayMs?: number;
  startupTaint?: boolean;
  startMic?: boolean;
  startNmi?: boolean;
  nmiArgs?: readonly string[];
  routeLocalnet?: 0 | 1 | "inherit";
  nmiReadOnlyProcSys?: boolean;
  micArgs?: readonly string[];
  readyTimeoutMs?: number;
  logToFiles?: boolean;
  runner?: ComponentRunner;
}

const require = createRequire(import.meta.url);
const packageDir = (name: string): string => dirname(require.resolve(`${name}/package.json`));

/** The deployables and apps, as built (`turbo run build` builds them before `demo` and `test`). */
export const PROGRAMS = {
  nmi: () => join(packageDir("@podidentity/nmi"), "dist", "main.js"),
  mic: () => join(packageDir("@podidentity/mic"), "dist", "main.js"),
  keyvaultSecret: () => join(packageDir("@podidentity/examples"), "dist", "keyvault-secret.js"),
} as const;
