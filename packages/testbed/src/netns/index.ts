// Nodes and pods as Linux network namespaces (issue 7): the public surface of this folder.
export { NetnsError } from "./errors";
export type { NetnsErrorCode } from "./errors";
export { KubeRestClient } from "./kube-client";
export type { KubeConnection } from "./kube-client";
export { azureProviderId, STARTUP_TAINT, toleratesTaint, untoleratedTaints } from "./kube-objects";
export type { AzureProviderIdParts, Taint, TaintEffect, Toleration } from "./kube-objects";
export { newRunId, PRIVATE_NETNS_ENV, privateNetnsInfo, privateNetnsUnavailableReason, runInPrivateNetns, spawnInPrivateNetns } from "./private-netns";
export type { PrivateNetnsInfo, PrivateNetnsMode, PrivateNetnsOptions, PrivateNetnsProcess } from "./private-netns";
export { runVitestInPrivateNetns } from "./run-vitest-in-private-netns";
export type { InnerTestResult, InnerVitestRun, RunVitestInPrivateNetnsOptions } from "./run-vitest-in-private-netns";
export { caEnvironment } from "./process-runner";
export type { ProcessResult, RunInNetnsOptions, SpawnInNetnsOptions } from "./process-runner";
export { DEFAULT_TOPOLOGY_OPTIONS, IMDS_CHAIN, Topology } from "./topology";
export type { TopologyOptions } from "./topology";
export { TopologyNode, TopologyPod } from "./topology-members";
export type { AddNodeOptions, AddPodOptions, PodPhase } from "./topology-members";
