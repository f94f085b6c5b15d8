import {
  API_GROUP,
  AZURE_ASSIGNED_IDENTITY_NAMES,
  AZURE_IDENTITY_BINDING_NAMES,
  AZURE_IDENTITY_NAMES,
  AZURE_POD_IDENTITY_EXCEPTION_NAMES,
} from "@podidentity/api";
import type { IPolicyRule } from "kubernetes-models/rbac.authorization.k8s.io/v1/PolicyRule";
import { INSTALL_NAMES, type InstallOptions } from "./install-options";

const READ = ["get", "list", "watch"];

/**
 * MIC's cluster-wide rules: what its informers read, the AzureAssignedIdentity objects it owns, the status it writes
 * on identities and bindings, and Events on pods in every namespace. It reads no exceptions (only NMI applies them)
 * and no Secrets (its own credential comes from azure.json).
 */
export function micClusterRules(): IPolicyRule[] {
  return [
    { apiGroups: [""], resources: ["pods", "nodes"], verbs: READ },
    { apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] },
    { apiGroups: [API_GROUP], resources: [AZURE_IDENTITY_NAMES.plural, AZURE_IDENTITY_BINDING_NAMES.plural], verbs: READ },
    {
      apiGroups: [API_GROUP],
      resources: [`${AZURE_IDENTITY_NAMES.plural}/status`, `${AZURE_IDENTITY_BINDING_NAMES.plural}/status`],
      verbs: ["get", "patch", "update"],
    },
    {
      apiGroups: [API_GROUP],
      resources: [AZURE_ASSIGNED_IDENTITY_NAMES.plural],
      verbs: ["get", "list", "watch", "create", "update", "patch", "delete"],
    },
  ];
}

/**
 * MIC's rules in its own namespace: the leader-election Lease. `create` cannot be limited by name in RBAC (the
 * name is not known at authorisation time), so get/update are limited to the Lease and create is not.
 */
export function micLeaderElectionRules(leaseName: string = INSTALL_NAMES.leaseName): IPolicyRule[] {
  return [
    { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
    { apiGroups: ["coordination.k8s.io"], resources: ["leases"], resourceNames: [leaseName], verbs: ["get", "update"] },
  ];
}

/**
 * NMI's rules in its own namespace: `get` on its DaemonSet, which it reads on SIGTERM to tell a restart or rollout
 * (keep the iptables rules, fail closed) from an uninstall or a node the DaemonSet left (remove them). Limited to
 * the DaemonSet's name; NMI finds that name through its own pod's ownerReference (cluster-wide `get pods`).
 */
export function nmiNamespaceRules(): IPolicyRule[] {
  return [{ apiGroups: ["apps"], resources: ["daemonsets"], resourceNames: [INSTALL_NAMES.nmi], verbs: ["get"] }];
}

/**
 * NMI's cluster-wide rules. `nodes` `patch`/`update` (only with `startupTaint`) are for removing the startup taint from its own node: RBAC
 * cannot narrow a DaemonSet's rule to "the node this pod runs on" (resourceNames are fixed at install time and the
 * NodeRestriction admission plugin only covers kubelets), so every NMI may edit every Node object — documented in
 * docs/install.md. Secrets `get` only with `allowAccessToSecrets` (service-principal identities).
 */
export function nmiClusterRules(options: Pick<InstallOptions, "mode" | "allowAccessToSecrets"> & Partial<Pick<InstallOptions, "startupTaint">>): IPolicyRule[] {
  const crds: string[] = [AZURE_IDENTITY_NAMES.plural, AZURE_IDENTITY_BINDING_NAMES.plural, AZURE_POD_IDENTITY_EXCEPTION_NAMES.plural];
  // Managed mode has no MIC, so no AzureAssignedIdentity objects to read.
  if (options.mode === "standard") crds.push(AZURE_ASSIGNED_IDENTITY_NAMES.plural);
  return [
    { apiGroups: [""], resources: ["pods"], verbs: READ },
    { apiGroups: [""], resources: ["nodes"], verbs: options.startupTaint === false ? READ : [...READ, "patch", "update"] },
    { apiGroups: [API_GROUP], resources: crds, verbs: READ },
    ...(options.allowAccessToSecrets ? [{ apiGroups: [""], resources: ["secrets"], verbs: ["get"] }] : []),
  ];
}
