export {
  DEFAULT_INSTALL_OPTIONS,
  INSTALL_NAMES,
  INSTALL_PORTS,
  INSTALL_VERSION,
  InstallOptionsError,
  checkKubeVersion,
  KUBERNETES_VERSION_NEEDS,
  MIN_KUBERNETES_VERSION,
  resolveInstallOptions,
} from "./install-options";
export type { IdentityWithBinding, InstallInput, InstallOptions, MicSettings, NmiSettings, OperationMode, WorkloadSettings } from "./install-options";
export { formatUnmapped, mapChartValues, V18_IMAGE_REPOSITORY } from "./chart-values";
export type { UnmappedValue } from "./chart-values";
export { identitiesFromValues, isServicePrincipal, parseInstallValues } from "./install-values";
export type { InstallValues, ValuesIdentityEntry, ValuesProblem } from "./install-values";
export { micClusterRules, micLeaderElectionRules, nmiClusterRules, nmiNamespaceRules } from "./rbac-rules";
export { micArgs, micDeployment, micImage, micPodDisruptionBudget } from "./mic-workload";
export { nmiArgs, nmiDaemonSet, nmiImage } from "./nmi-workload";
export { podIdentityExceptions, renderManifests, userFacingClusterRoles } from "./render-manifests";
export type { InstallManifest } from "./render-manifests";
export { DEPLOY_FILES, deployFileHeader, installWarnings, manifestsToYaml, RENDER_DEPLOY_COMMAND, renderInstallYaml } from "./render-install-yaml";
export { AADPODIDENTITY_RECORDING_RULES_YAML, PROMETHEUS_RULE_NAME, prometheusRule, recordingRuleGroups } from "./prometheus-rules";
export type { PrometheusRule, RecordingRule, RuleGroup } from "./prometheus-rules";
export { checkRbacCoverage, requestsFromCounts, rulesForServiceAccount } from "./rbac-coverage";
export type { ApiRequest, RbacCoverage, SubjectRules } from "./rbac-coverage";
