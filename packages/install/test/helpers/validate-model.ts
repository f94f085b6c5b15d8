import { DaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { ClusterRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole";
import { ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";
import { Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import { RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import type { InstallManifest } from "../../src/index";

type Validatable = { validate(): void };
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const MODELS: Record<string, new (data: any) => Validatable> = {
  Namespace,
  ServiceAccount,
  ClusterRole,
  ClusterRoleBinding,
  Role,
  RoleBinding,
  Deployment,
  PodDisruptionBudget,
  DaemonSet,
};

/**
 * Validates a rendered object against the Kubernetes OpenAPI schema kubernetes-models generated; custom resources
 * (no model) return "custom" — the API server's structural schema checks them in the kubectl tests.
 */
export function validateWithModel(object: InstallManifest): "validated" | "custom" {
  const Model = MODELS[object.kind];
  if (Model === undefined) return "custom";
  new Model(structuredClone(object)).validate();
  return "validated";
}
