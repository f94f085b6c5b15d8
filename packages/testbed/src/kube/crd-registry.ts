/**
 * Which resources are served: the built-ins plus, for every established CustomResourceDefinition, one resource
 * per served version. Also validates CRDs (the checks that matter for a structural v1 CRD) and computes the
 * status the apiextensions controllers would set once names are accepted.
 */
import { builtinResources, metaOf, storageKey } from "./resources";
import type { KubeObject, PrinterColumn, ResourceDef } from "./resources";
import type { JsonSchemaProps } from "./schema";
import { structuralErrors } from "./schema";
import type { FieldError } from "./status-errors";

export const CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io";
export const CRD_STORAGE_KEY = "customresourcedefinitions.apiextensions.k8s.io";

type Json = Record<string, unknown>;

function obj(v: unknown): Json {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Json) : {};
}

function str(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((s): s is string => typeof s === "string") : [];
}

/** Kubernetes' version priority: GA > beta > alpha, higher numbers first, then anything else by name. */
export function compareKubeVersions(a: string, b: string): number {
  const parse = (v: string) => {
    const m = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(v);
    if (!m) return { rank: 3, major: 0, minor: 0 };
    const rank = m[2] === undefined ? 0 : m[2] === "beta" ? 1 : 2;
    return { rank, major: Number(m[1]), minor: Number(m[3] ?? 0) };
  };
  const pa = parse(a);
  const pb = parse(b);
  if (pa.rank !== pb.rank) return pa.rank - pb.rank;
  if (pa.rank === 3) return a < b ? -1 : a > b ? 1 : 0;
  if (pa.major !== pb.major) return pb.major - pa.major;
  return pb.minor - pa.minor;
}

export interface ServedGroup {
  name: string;
  /** Served versions, preferred first. */
  versions: string[];
}

export class ResourceRegistry {
  readonly #builtins: ResourceDef[] = builtinResources();
  #custom: ResourceDef[] = [];

  all(): ResourceDef[] {
    return [...this.#builtins, ...this.#custom];
  }

  find(group: string, version: string, plural: string): ResourceDef | undefined {
    return this.all().find((d) => d.group === group && d.version === version && d.plural === plural);
  }

  /** Any served version of a resource, for lookups by storage key. */
  findByStorageKey(key: string): ResourceDef | undefined {
    return this.all().find((d) => storageKey(d) === key);
  }

  groupVersionServed(group: string, version: string): boolean {
    return this.all().some((d) => d.group === group && d.version === version);
  }

  groups(): ServedGroup[] {
    const byGroup = new Map<string, Set<string>>();
    for (const d of this.all()) {
      if (!d.group) continue;
      const set = byGroup.get(d.group) ?? new Set<string>();
      set.add(d.version);
      byGroup.set(d.group, set);
    }
    return [...byGroup.entries()].map(([name, versions]) => ({ name, versions: [...versions].sort(compareKubeVersions) }));
  }

  /** Rebuilds the custom resources from the stored CRDs; only established ones are served. */
  setCrds(crds: KubeObject[]): void {
    this.#custom = crds.filter(isEstablished).flatMap(resourcesOfCrd);
  }
}

export function isEstablished(crd: KubeObject): boolean {
  const conditions = obj(crd["status"])["conditions"];
  return Array.isArray(conditions) && conditions.some((c) => obj(c)["type"] === "Established" && obj(c)["status"] === "True");
}

function resourcesOfCrd(crd: KubeObject): ResourceDef[] {
  const spec = obj(crd["spec"]);
  const names = obj(spec["names"]);
  const group = str(spec["group"]) ?? "";
  const kind = str(names["kind"]) ?? "";
  const plural = str(names["plural"]) ?? "";
  const versions = Array.isArray(spec["versions"]) ? spec["versions"].map(obj) : [];
  return versions
    .filter((v) => v["served"] === true)
    .map((v) => {
      const selectable = Array.isArray(v["selectableFields"]) ? v["selectableFields"].map(obj) : [];
      const fieldLabels: ResourceDef["fieldLabels"] = {};
      for (const f of selectable) {
        const jsonPath = str(f["jsonPath"]);
        if (!jsonPath) continue;
        const dotted = jsonPath.replace(/^\./, "");
        fieldLabels[dotted] = (o) => {
          let cur: unknown = o;
          for (const p of dotted.split(".")) cur = obj(cur)[p];
          return cur === undefined || cur === null || typeof cur === "object" ? undefined : String(cur);
        };
      }
      const d: ResourceDef = {
        group,
        version: str(v["name"]) ?? "",
        kind,
        listKind: str(names["listKind"]) ?? `${kind}List`,
        plural,
        singular: str(names["singular"]) ?? kind.toLowerCase(),
        namespaced: spec["scope"] !== "Cluster",
        shortNames: strings(names["shortNames"]),
        categories: strings(names["categories"]),
        statusSubresource: obj(v["subresources"])["status"] !== undefined,
        generation: true,
        allowUnconditionalUpdate: false,
        strategicMerge: false,
        fieldLabels,
        schema: obj(obj(v["schema"])["openAPIV3Schema"]) as JsonSchemaProps,
        printerColumns: Array.isArray(v["additionalPrinterColumns"])
          ? (v["additionalPrinterColumns"] as PrinterColumn[])
          : [],
        crdName: metaOf(crd).name ?? "",
      };
      return d;
    });
}

const API_APPROVED_ANNOTATION = "api-approved.kubernetes.io";

/** Groups Kubernetes reserves for APIs reviewed upstream (k8s.io, kubernetes.io and their subdomains). */
function isProtectedGroup(group: string): boolean {
  return ["k8s.io", "kubernetes.io"].some((g) => group === g || group.endsWith(`.${g}`));
}

/**
 * A CRD in a protected group must carry api-approved.kubernetes.io: the URL of the approving pull request, or a value
 * starting with "unapproved" (kube-apiserver's apiextensions validation; aad-pod-identity's CRDs use "unapproved").
 */
function approvalErrors(value: string | undefined): FieldError[] {
  const field = `metadata.annotations[${API_APPROVED_ANNOTATION}]`;
  if (value === undefined) {
    return [{ type: "Required", field, detail: `protected groups must have approval annotation "${API_APPROVED_ANNOTATION}", see https://github.com/kubernetes/enhancements/pull/1111` }];
  }
  if (value.startsWith("unapproved")) return [];
  try {
    const url = new URL(value);
    if (url.protocol === "http:" || url.protocol === "https:") return [];
  } catch {
    // not a URL: invalid below
  }
  return [{ type: "Invalid", field, value, detail: 'protected groups must have approval annotation "api-approved.kubernetes.io" with either a URL or a reason starting with "unapproved"' }];
}

/** Validation of a CustomResourceDefinition (apiextensions.k8s.io/v1), returning field errors. */
export function validateCrd(crd: KubeObject): FieldError[] {
  const errors: FieldError[] = [];
  const spec = obj(crd["spec"]);
  const names = obj(spec["names"]);
  const group = str(spec["group"]);
  const plural = str(names["plural"]);
  if (!group) errors.push({ type: "Required", field: "spec.group" });
  else if (!group.includes(".")) errors.push({ type: "Invalid", field: "spec.group", value: group, detail: "should be a domain with at least one dot" });
  if (!plural) errors.push({ type: "Required", field: "spec.names.plural" });
  else if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(plural)) {
    errors.push({ type: "Invalid", field: "spec.names.plural", value: plural, detail: "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'" });
  }
  if (!str(names["kind"])) errors.push({ type: "Required", field: "spec.names.kind" });
  if (group && isProtectedGroup(group)) errors.push(...approvalErrors(metaOf(crd).annotations?.[API_APPROVED_ANNOTATION]));
  const name = metaOf(crd).name ?? "";
  if (group && plural && name !== `${plural}.${group}`) {
    errors.push({ type: "Invalid", field: "metadata.name", value: name, detail: 'must be spec.names.plural+"."+spec.group' });
  }
  const scope = spec["scope"];
  if (scope !== "Namespaced" && scope !== "Cluster") {
    errors.push(scope === undefined ? { type: "Required", field: "spec.scope" } : { type: "NotSupported", field: "spec.scope", value: scope, supported: ["Cluster", "Namespaced"] });
  }
  const versions = Array.isArray(spec["versions"]) ? spec["versions"].map(obj) : [];
  if (versions.length === 0) errors.push({ type: "Invalid", field: "spec.versions", value: [], detail: "must have exactly one version marked as storage version" });
  else if (versions.filter((v) => v["storage"] === true).length !== 1) {
    errors.push({ type: "Invalid", field: "spec.versions", value: [], detail: "must have exactly one version marked as storage version" });
  }
  versions.forEach((v, i) => {
    const vname = str(v["name"]);
    if (!vname) errors.push({ type: "Required", field: `spec.versions[${i}].name` });
    if (typeof v["served"] !== "boolean") errors.push({ type: "Required", field: `spec.versions[${i}].served` });
    const schema = obj(v["schema"])["openAPIV3Schema"];
    if (schema === undefined) errors.push({ type: "Required", field: `spec.versions[${i}].schema.openAPIV3Schema`, detail: "schemas are required" });
    else errors.push(...structuralErrors(schema, `spec.versions[${i}].schema.openAPIV3Schema`));
  });
  return errors;
}

/** The status the apiextensions controllers converge a new CRD to: names accepted, established. */
export function establishedStatus(crd: KubeObject, nowIso: string): Json {
  const spec = obj(crd["spec"]);
  const names = obj(spec["names"]);
  const kind = str(names["kind"]) ?? "";
  const acceptedNames: Json = {
    kind,
    listKind: str(names["listKind"]) ?? `${kind}List`,
    plural: str(names["plural"]) ?? "",
    singular: str(names["singular"]) ?? kind.toLowerCase(),
  };
  if (strings(names["shortNames"]).length) acceptedNames["shortNames"] = strings(names["shortNames"]);
  if (strings(names["categories"]).length) acceptedNames["categories"] = strings(names["categories"]);
  const versions = Array.isArray(spec["versions"]) ? spec["versions"].map(obj) : [];
  const storage = versions.find((v) => v["storage"] === true);
  const previous = strings(obj(crd["status"])["storedVersions"]);
  const stored = str(storage?.["name"]);
  return {
    acceptedNames,
    conditions: [
      { type: "NamesAccepted", status: "True", lastTransitionTime: nowIso, reason: "NoConflicts", message: "no conflicts found" },
      { type: "Established", status: "True", lastTransitionTime: nowIso, reason: "InitialNamesAccepted", message: "the initial names have been accepted" },
    ],
    storedVersions: stored && !previous.includes(stored) ? [...previous, stored] : previous,
  };
}

export function terminatingCondition(nowIso: string): Json {
  return {
    type: "Terminating",
    status: "True",
    lastTransitionTime: nowIso,
    reason: "InstanceDeletionInProgress",
    message: "CustomResourceDefinition marked for deletion; instances are being removed",
  };
}
