import {
  API_GROUP_VERSION,
  AZURE_POD_IDENTITY_EXCEPTION_NAMES,
  type AzureIdentity,
  type AzureIdentityBinding,
  type AzurePodIdentityException,
} from "@podidentity/api";
import type { IDaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IPodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import type { IClusterRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole";
import type { IClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";
import type { IRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import type { IRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import type { INamespace } from "kubernetes-models/v1/Namespace";
import type { IServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { API_GROUP, AZURE_ASSIGNED_IDENTITY_NAMES, AZURE_IDENTITY_BINDING_NAMES, AZURE_IDENTITY_NAMES } from "@podidentity/api";
import { INSTALL_NAMES, resolveInstallOptions, type InstallInput, type InstallOptions } from "./install-options";
import { commonLabels, selectorLabels, type Component } from "./labels";
import { micDeployment, micPodDisruptionBudget } from "./mic-workload";
import { nmiDaemonSet } from "./nmi-workload";
import { prometheusRule, type PrometheusRule } from "./prometheus-rules";
import { micClusterRules, micLeaderElectionRules, nmiClusterRules, nmiNamespaceRules } from "./rbac-rules";

/** Every kind `render` can produce, typed by kubernetes-models (built-ins) or @podidentity/api (custom resources). */
export type InstallManifest =
  | INamespace
  | IServiceAccount
  | IClusterRole
  | IClusterRoleBinding
  | IRole
  | IRoleBinding
  | IDeployment
  | IPodDisruptionBudget
  | IDaemonSet
  | AzurePodIdentityException
  | AzureIdentity
  | AzureIdentityBinding
  | PrometheusRule;

/** Namespaces that exist in every cluster; any other install namespace is rendered as a Namespace object. */
const BUILTIN_NAMESPACES = new Set(["default", "kube-system", "kube-public", "kube-node-lease"]);

function serviceAccount(component: Component, namespace: string): IServiceAccount {
  return { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: `podidentity-${component}`, namespace, labels: commonLabels(component) } };
}

function clusterRole(component: Component, rules: IClusterRole["rules"]): IClusterRole {
  return { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata: { name: `podidentity-${component}`, labels: commonLabels(component) }, rules };
}

function clusterRoleBinding(component: Component, namespace: string): IClusterRoleBinding {
  const name = `podidentity-${component}`;
  return {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name, labels: commonLabels(component) },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name },
    subjects: [{ kind: "ServiceAccount", name, namespace }],
  };
}

function exception(name: string, namespace: string, podLabels: Record<string, string>): AzurePodIdentityException {
  return {
    apiVersion: API_GROUP_VERSION,
    kind: AZURE_POD_IDENTITY_EXCEPTION_NAMES.kind,
    metadata: { name, namespace, labels: commonLabels() },
    spec: { podLabels },
  };
}

/**
 * The AzurePodIdentityExceptions v1.8's chart installed (`installMICException`): MIC's own pods reach the real IMDS
 * for the cluster identity (MIC is not hostNetwork, so NMI would otherwise intercept it), and AKS's first-party
 * add-ons (label `kubernetes.azure.com/managedby: aks`, in kube-system) keep working as with the AKS add-on.
 */
export function podIdentityExceptions(o: InstallOptions): AzurePodIdentityException[] {
  return [
    ...(o.mode === "standard" && o.installMicException ? [exception(INSTALL_NAMES.micException, o.namespace, selectorLabels("mic"))] : []),
    exception(INSTALL_NAMES.aksAddonException, INSTALL_NAMES.aksAddonExceptionNamespace, { "kubernetes.azure.com/managedby": "aks" }),
  ];
}

/**
 * Every object of an installation, in apply order (namespace, identities of the workloads, RBAC, workloads,
 * custom resources). CRDs are not included: apply `renderCrdsYaml()` (deploy/crds/crds.yaml) first, as
 * `kubectl apply` cannot map a custom resource whose CRD it creates in the same run.
 */
export function renderManifests(input: InstallInput = {}): InstallManifest[] {
  const o = resolveInstallOptions(input);
  const out: InstallManifest[] = [];
  if (!BUILTIN_NAMESPACES.has(o.namespace)) {
    out.push({ apiVersion: "v1", kind: "Namespace", metadata: { name: o.namespace, labels: commonLabels() } });
  }
  const standard = o.mode === "standard";
  if (standard) out.push(serviceAccount("mic", o.namespace));
  out.push(serviceAccount("nmi", o.namespace));
  if (standard) {
    out.push(clusterRole("mic", micClusterRules()), clusterRoleBinding("mic", o.namespace));
    out.push({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: INSTALL_NAMES.micLeaderElection, namespace: o.namespace, labels: commonLabels("mic") },
      rules: micLeaderElectionRules(o.mic.leaseName),
    });
    out.push({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: INSTALL_NAMES.micLeaderElection, namespace: o.namespace, labels: commonLabels("mic") },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: INSTALL_NAMES.micLeaderElection },
      subjects: [{ kind: "ServiceAccount", name: INSTALL_NAMES.mic, namespace: o.namespace }],
    });
  }
  out.push(clusterRole("nmi", nmiClusterRules(o)), clusterRoleBinding("nmi", o.namespace));
  out.push({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    metadata: { name: INSTALL_NAMES.nmiDaemonSetReader, namespace: o.namespace, labels: commonLabels("nmi") },
    rules: nmiNamespaceRules(),
  });
  out.push({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    metadata: { name: INSTALL_NAMES.nmiDaemonSetReader, namespace: o.namespace, labels: commonLabels("nmi") },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: INSTALL_NAMES.nmiDaemonSetReader },
    subjects: [{ kind: "ServiceAccount", name: INSTALL_NAMES.nmi, namespace: o.namespace }],
  });
  if (standard) out.push(micDeployment(o), micPodDisruptionBudget(o));
  out.push(nmiDaemonSet(o));
  out.push(...podIdentityExceptions(o));
  if (o.createUserFacingClusterRoles) out.push(...userFacingClusterRoles(o));
  if (o.prometheusRecordingRules) out.push(prometheusRule(o));
  for (const { identity, binding } of o.identities) out.push(identity, binding);
  return out;
}

/**
 * v1.8's `rbac.createUserFacingClusterRoles`: ClusterRoles aggregated into the built-in view / edit / admin roles, so
 * namespace users can read (and editors write) identities, bindings and exceptions.
 */
export function userFacingClusterRoles(o: Pick<InstallOptions, "mode">): IClusterRole[] {
  const resources: string[] = [AZURE_IDENTITY_BINDING_NAMES.plural, AZURE_IDENTITY_NAMES.plural, AZURE_POD_IDENTITY_EXCEPTION_NAMES.plural];
  const aggregate = (...roles: string[]): Record<string, string> => Object.fromEntries(roles.map((r) => [`rbac.authorization.k8s.io/aggregate-to-${r}`, "true"]));
  return [
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "podidentity-view", labels: { ...commonLabels(), ...aggregate("view", "edit", "admin") } },
      rules: [
        { apiGroups: [API_GROUP], resources, verbs: ["get", "list", "watch"] },
        ...(o.mode === "standard" ? [{ apiGroups: [API_GROUP], resources: [AZURE_ASSIGNED_IDENTITY_NAMES.plural], verbs: ["get", "list", "watch"] }] : []),
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "podidentity-edit", labels: { ...commonLabels(), ...aggregate("edit", "admin") } },
      rules: [{ apiGroups: [API_GROUP], resources, verbs: ["create", "delete", "deletecollection", "patch", "update"] }],
    },
  ];
}
