/**
 * What the emulated API server serves: the built-in resources of the subset, each described the way
 * discovery describes it, plus the per-resource rules the REST layer needs (status subresource, generation,
 * field selectors, strategic merge patch support).
 */
import type { JsonSchemaProps } from "./schema";

export type KubeObject = Record<string, unknown>;

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: unknown[];
  [key: string]: unknown;
}

export interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  description?: string;
  priority?: number;
  format?: string;
  /** Built-in columns compute their cell instead of reading a JSONPath. */
  compute?: (obj: KubeObject) => unknown;
}

export interface ResourceDef {
  group: string;
  version: string;
  kind: string;
  listKind: string;
  /** Lower-case plural, the URL segment. */
  plural: string;
  singular: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  statusSubresource: boolean;
  /** Whether metadata.generation is maintained (bumped when anything but metadata and status changes). */
  generation: boolean;
  /** PUT without metadata.resourceVersion allowed (false for custom resources, as in Kubernetes). */
  allowUnconditionalUpdate: boolean;
  /** Accepts application/strategic-merge-patch+json (built-in types only, as in Kubernetes). */
  strategicMerge: boolean;
  /** Field selector labels beyond metadata.name and metadata.namespace. */
  fieldLabels: Record<string, (obj: KubeObject) => string | undefined>;
  /** Structural schema of a custom resource version: pruning and validation. */
  schema?: JsonSchemaProps;
  printerColumns?: PrinterColumn[];
  /** The CRD that serves this resource, if any. */
  crdName?: string;
  /** A create-only review answered from the requesting user and never stored (access-reviews.ts). */
  review?: boolean;
  /** Serves the autoscaling/v1 `scale` subresource over spec.replicas (`kubectl scale`). */
  scaleSubresource?: boolean;
}

export const ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

export function apiVersionOf(def: Pick<ResourceDef, "group" | "version">): string {
  return def.group ? `${def.group}/${def.version}` : def.version;
}

/** Key under which objects of a resource are stored, independent of the version they are served in. */
export function storageKey(def: Pick<ResourceDef, "group" | "plural">): string {
  return def.group ? `${def.plural}.${def.group}` : def.plural;
}

export function metaOf(obj: KubeObject): ObjectMeta {
  const m = obj["metadata"];
  if (m && typeof m === "object" && !Array.isArray(m)) return m as ObjectMeta;
  const created: ObjectMeta = {};
  obj["metadata"] = created;
  return created;
}

/** Reads a dotted path (`status.podIP`) as a string, the way field selectors see values. */
export function fieldString(obj: KubeObject, path: string): string | undefined {
  let cur: unknown = obj;
  for (const part of path.split(".")) {
    if (!cur || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  if (cur === undefined || cur === null) return undefined;
  if (typeof cur === "object") return undefined;
  return String(cur);
}

const path = (p: string) => (obj: KubeObject) => fieldString(obj, p);
const boolPath = (p: string) => (obj: KubeObject) => fieldString(obj, p) ?? "false";

function def(partial: Partial<ResourceDef> & Pick<ResourceDef, "group" | "version" | "kind" | "plural">): ResourceDef {
  return {
    listKind: `${partial.kind}List`,
    singular: partial.kind.toLowerCase(),
    namespaced: true,
    shortNames: [],
    categories: [],
    statusSubresource: false,
    generation: false,
    allowUnconditionalUpdate: true,
    strategicMerge: true,
    fieldLabels: {},
    ...partial,
  };
}

/** The built-in resources served. Stored as given (no controllers), apart from the noted server-side rules. */
export function builtinResources(): ResourceDef[] {
  return [
    def({
      group: "",
      version: "v1",
      kind: "Pod",
      plural: "pods",
      shortNames: ["po"],
      categories: ["all"],
      statusSubresource: true,
      fieldLabels: {
        "spec.nodeName": path("spec.nodeName"),
        "spec.restartPolicy": path("spec.restartPolicy"),
        "spec.schedulerName": path("spec.schedulerName"),
        "spec.serviceAccountName": path("spec.serviceAccountName"),
        "spec.hostNetwork": boolPath("spec.hostNetwork"),
        "status.phase": path("status.phase"),
        "status.podIP": path("status.podIP"),
        "status.nominatedNodeName": path("status.nominatedNodeName"),
      },
    }),
    def({
      group: "",
      version: "v1",
      kind: "Node",
      plural: "nodes",
      namespaced: false,
      shortNames: ["no"],
      statusSubresource: true,
      fieldLabels: { "spec.unschedulable": boolPath("spec.unschedulable") },
    }),
    def({
      group: "",
      version: "v1",
      kind: "Namespace",
      plural: "namespaces",
      namespaced: false,
      shortNames: ["ns"],
      statusSubresource: true,
      fieldLabels: { "status.phase": path("status.phase") },
    }),
    def({ group: "", version: "v1", kind: "Secret", plural: "secrets", fieldLabels: { type: path("type") } }),
    def({ group: "", version: "v1", kind: "ConfigMap", plural: "configmaps", shortNames: ["cm"] }),
    def({
      group: "",
      version: "v1",
      kind: "Event",
      plural: "events",
      shortNames: ["ev"],
      fieldLabels: Object.fromEntries(
        [
          "involvedObject.kind",
          "involvedObject.namespace",
          "involvedObject.name",
          "involvedObject.uid",
          "involvedObject.apiVersion",
          "involvedObject.resourceVersion",
          "involvedObject.fieldPath",
          "reason",
          "reportingComponent",
          "type",
        ].map((p) => [p, path(p)]),
      ),
    }),
    def({ group: "", version: "v1", kind: "ServiceAccount", plural: "serviceaccounts", shortNames: ["sa"] }),
    def({
      group: "",
      version: "v1",
      kind: "Service",
      plural: "services",
      shortNames: ["svc"],
      categories: ["all"],
      statusSubresource: true,
    }),
    def({ group: "coordination.k8s.io", version: "v1", kind: "Lease", plural: "leases" }),
    def({
      group: "apps",
      version: "v1",
      kind: "Deployment",
      plural: "deployments",
      shortNames: ["deploy"],
      categories: ["all"],
      statusSubresource: true,
      generation: true,
      scaleSubresource: true,
    }),
    def({
      group: "apps",
      version: "v1",
      kind: "DaemonSet",
      plural: "daemonsets",
      shortNames: ["ds"],
      categories: ["all"],
      statusSubresource: true,
      generation: true,
    }),
    def({ group: "authorization.k8s.io", version: "v1", kind: "SelfSubjectAccessReview", plural: "selfsubjectaccessreviews", namespaced: false, review: true }),
    def({ group: "authentication.k8s.io", version: "v1", kind: "SelfSubjectReview", plural: "selfsubjectreviews", namespaced: false, review: true }),
    def({ group: "rbac.authorization.k8s.io", version: "v1", kind: "Role", plural: "roles" }),
    def({ group: "rbac.authorization.k8s.io", version: "v1", kind: "RoleBinding", plural: "rolebindings" }),
    def({ group: "rbac.authorization.k8s.io", version: "v1", kind: "ClusterRole", plural: "clusterroles", namespaced: false }),
    def({
      group: "rbac.authorization.k8s.io",
      version: "v1",
      kind: "ClusterRoleBinding",
      plural: "clusterrolebindings",
      namespaced: false,
    }),
    def({
      group: "policy",
      version: "v1",
      kind: "PodDisruptionBudget",
      plural: "poddisruptionbudgets",
      shortNames: ["pdb"],
      statusSubresource: true,
      generation: true,
    }),
    def({
      group: "scheduling.k8s.io",
      version: "v1",
      kind: "PriorityClass",
      plural: "priorityclasses",
      namespaced: false,
      shortNames: ["pc"],
    }),
    def({
      group: "apiextensions.k8s.io",
      version: "v1",
      kind: "CustomResourceDefinition",
      plural: "customresourcedefinitions",
      namespaced: false,
      shortNames: ["crd", "crds"],
      statusSubresource: true,
      generation: true,
    }),
  ];
}
