export { Mic } from "./mic";
export { DesiredState } from "./state/desired-state";
export type { DesiredAssignment, DesiredStateChange, DesiredStateOptions, NodeObject, PodObject } from "./state/desired-state";
export type { MicOptions } from "./mic";
export { DEFAULT_MIC_OPTIONS } from "./runtime/config";
export type { LeaderElectionConfig } from "./runtime/config";
export {
  CLOUD_ENDPOINTS,
  cloudConfigFromEnv,
  cloudEndpoints,
  createArmCredential,
  parseCloudConfig,
  readCloudConfig,
  ReloadingArmCredential,
} from "./runtime/cloud-config";
export type { CloudConfig, CloudEndpoints } from "./runtime/cloud-config";
export { ArmRequestError, CloudConfigError, NotLeaderError, TerminalError } from "./errors";
export {
  ADDED_BY_ANNOTATION,
  COMPUTE_RESOURCE_ANNOTATION,
  FINGERPRINT_ANNOTATION,
} from "./state/assigned-identity-index";
export { MAX_IDENTITIES_PER_REQUEST, nextIdentityType, planIdentityPatches } from "./arm/identity-delta";
export type { IdentityDelta, IdentityPatch } from "./arm/identity-delta";
export { failedIdentityIds } from "./arm/failed-identities";
export { nodeComputeTarget } from "./arm/compute-target";
export type { ComputeTarget } from "./arm/compute-target";
export { WriteBudget } from "./arm/write-budget";
export type { WriteBudgetOptions } from "./arm/write-budget";
export { systemClock } from "./clock";
export type { Clock } from "./clock";
