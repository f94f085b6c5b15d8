export { ManualClock, systemClock } from "./clock";
export type { Clock } from "./clock";

// Azure side and TLS (issue 3)
export { DEFAULT_TESTBED_CA_OPTIONS, TestbedCa } from "./tls/testbed-ca";
export type { IssueOptions, IssuedCertificate, TestbedCaOptions } from "./tls/testbed-ca";
export { AZURE_HOST_NAMES, AzureCloud, DEFAULT_AZURE_CLOUD_OPTIONS } from "./cloud";
export type { AzureCloudOptions } from "./cloud";
export { APP_ENV_FILE, AzureTestbed, DEFAULT_AZURE_TESTBED_OPTIONS } from "./azure-testbed";
export { AzureHostProxy, DEFAULT_AZURE_HOST_PROXY_OPTIONS } from "./azure-host-proxy";
export type { AzureHostProxyOptions, ProxyDecision, ProxyTarget } from "./azure-host-proxy";
export type { AzureTestbedEndpoints, AzureTestbedOptions } from "./azure-testbed";
export { createCli, DEFAULT_CLI_OPTIONS } from "./cli";
export type { CliIo } from "./cli";
export { ARM_AUDIENCES } from "./azure/arm-auth";
export { ArmServer, DEFAULT_ARM_SERVER_OPTIONS } from "./azure/arm-server";
export type { ArmCall, ArmServerOptions, ConcurrentWriteMode } from "./azure/arm-server";
export { AzuriteBlob, AzuriteStartError, DEFAULT_AZURITE_OPTIONS, resolveAzuriteBlobScript } from "./azure/azurite";
export type { AzuriteBlobOptions } from "./azure/azurite";
export { ComputeResource, MAX_USER_ASSIGNED_IDENTITIES_PER_REQUEST } from "./azure/compute-resource";
export type { ComputeKind, IdentityType, SystemAssignment, UserAssignment } from "./azure/compute-resource";
export { ComputeStore } from "./azure/compute-store";
export type { ResourceGroup, Subscription } from "./azure/compute-store";
export { DEFAULT_ENTRA_SERVER_OPTIONS, EntraServer } from "./azure/entra-server";
export type { EntraCall, EntraServerOptions } from "./azure/entra-server";
export { IdentityRegistry, userAssignedIdentityId } from "./azure/identity-registry";
export type { AddServicePrincipalOptions, ServicePrincipal, UserAssignedIdentity } from "./azure/identity-registry";
export { DEFAULT_IMDS_SERVER_OPTIONS, ImdsServer } from "./azure/imds-server";
export type { ImdsCounters, ImdsServerOptions } from "./azure/imds-server";
export { DEFAULT_KEY_VAULT_SERVER_OPTIONS, KEY_VAULT_AUDIENCES, KeyVaultServer } from "./azure/keyvault-server";
export type { KeyVaultServerOptions, SecretPermission } from "./azure/keyvault-server";
export { DEFAULT_KNOWN_RESOURCES, KnownResources } from "./azure/known-resources";
export { OperationTracker } from "./azure/lro";
export type { Operation, OperationStatus } from "./azure/lro";
export { TokenBucket } from "./azure/throttle";
export type { TokenBucketOptions } from "./azure/throttle";
export { DEFAULT_TOKEN_ISSUER_OPTIONS, TokenIssuer, TokenVerificationError } from "./azure/token-issuer";
export type { ClientAuthentication, IssuedToken, IssueTokenRequest, TokenIssuerOptions } from "./azure/token-issuer";

// Azure SQL TDS responder
export { DEFAULT_TDS_SERVER_OPTIONS, TdsServer } from "./sql/tds-server";
export type { LoginFailureReason, TdsBatch, TdsLogin, TdsServerOptions } from "./sql/tds-server";

// Kubernetes API server (issue 4)
export { DEFAULT_KUBE_API_SERVER_OPTIONS, KubeApiServer } from "./kube/kube-api-server";
export type { KubeApiServerOptions } from "./kube/kube-api-server";
export type { FailureFault, KubeVerb, LatencyFault, RequestFilter, RequestRecord } from "./kube/faults";
export type { StoreEvent, StoreEventType } from "./kube/store";
export type { KubeObject, ObjectMeta } from "./kube/resources";
export { KubeStatusError } from "./kube/status-errors";
export { canonicalQuantity, QuantityError } from "./kube/quantity";
export type { KubeStatus, StatusCause, StatusDetails } from "./kube/status-errors";
export { findKubectl, kubectlRunner, toolingKubectlPath } from "./kube/kubectl";
export type { KubectlResult } from "./kube/kubectl";
export { renderKubeconfig } from "./kube/kubeconfig";
export type { KubeconfigOptions } from "./kube/kubeconfig";

// A real kube-apiserver + etcd as the second Kubernetes backend (issue 14)
export { DEFAULT_REAL_KUBE_API_SERVER_OPTIONS, RealKubeApiServer, RealKubeError, realKubeUnavailableReason, resourcePath } from "./real-kube/real-kube-api-server";
export type { RealKubeApiServerOptions } from "./real-kube/real-kube-api-server";
export { findRealKubeBinaries } from "./real-kube/real-kube-binaries";
export type { RealKubeBinaries } from "./real-kube/real-kube-binaries";

// Network-namespace topology (issue 7)
export {
  azureProviderId,
  caEnvironment,
  DEFAULT_TOPOLOGY_OPTIONS,
  IMDS_CHAIN,
  KubeRestClient,
  NetnsError,
  newRunId,
  PRIVATE_NETNS_ENV,
  privateNetnsInfo,
  privateNetnsUnavailableReason,
  runInPrivateNetns,
  runVitestInPrivateNetns,
  spawnInPrivateNetns,
  STARTUP_TAINT,
  toleratesTaint,
  Topology,
  TopologyNode,
  TopologyPod,
  untoleratedTaints,
} from "./netns/index";
export type {
  AddNodeOptions,
  AddPodOptions,
  AzureProviderIdParts,
  InnerTestResult,
  InnerVitestRun,
  KubeConnection,
  NetnsErrorCode,
  PodPhase,
  PrivateNetnsInfo,
  PrivateNetnsMode,
  PrivateNetnsOptions,
  PrivateNetnsProcess,
  ProcessResult,
  RunInNetnsOptions,
  RunVitestInPrivateNetnsOptions,
  SpawnInNetnsOptions,
  Taint,
  TaintEffect,
  Toleration,
  TopologyOptions,
} from "./netns/index";
