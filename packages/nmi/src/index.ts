// The public API: the agent, its options and defaults, the CLI's parsers an embedding program reuses, what
// `NmiOptions.interception` takes, and the error types a caller can catch. Everything else is internal: the tests
// import it from its module (`../src/interception/iptables-manager`, `../src/server/request-route`, …).
export { Nmi } from "./nmi";
export type { InterceptionOnStop, NmiOptions, StopReport } from "./nmi";
export { DEFAULT_NMI_OPTIONS, resolveNmiConfig } from "./config";
export type { NmiConfig, NmiConfigInput, OperationMode } from "./config";
export { CLEANUP_COMMAND, isCleanupCommand, parseCleanupOptions, parseCliOptions } from "./cli-options";
export type { CleanupCliOptions, CliOptions } from "./cli-options";
export { removeInterceptionRules } from "./interception/rule-cleanup";
export type { CleanupReport } from "./interception/rule-cleanup";
export { IptablesManager, InterceptionError } from "./interception/iptables-manager";
export type { IptablesBackend, IptablesManagerOptions } from "./interception/iptables-manager";
export { execRunner } from "./interception/command-runner";
export type { CommandResult, CommandRunner } from "./interception/command-runner";
export { KubenetRefusedError } from "./interception/network-plugin-check";
export { NMI_ERROR_CODE, NmiError } from "./errors";
export type { NmiErrorCode } from "./errors";
export { NMI_VERSION, NMI_VERSION_HEADER } from "./version";
// The client Nmi takes (NmiOptions.kube); the rest of the Kubernetes client lives in @podidentity/kube.
export { KubeClient } from "@podidentity/kube";
export type { NmiMetrics } from "./metrics";
