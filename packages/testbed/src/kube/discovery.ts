/**
 * Legacy (unaggregated) discovery documents: /version, /api, /api/v1, /apis, /apis/{group},
 * /apis/{group}/{version}. kubectl falls back to these when the server does not answer aggregated discovery.
 */
import type { ResourceRegistry } from "./crd-registry";
import type { ResourceDef } from "./resources";
import { ALL_VERBS } from "./resources";

export interface KubernetesVersion {
  major: string;
  minor: string;
  gitVersion: string;
}

export const DEFAULT_KUBERNETES_VERSION = "v1.31.4";

export function versionInfo(gitVersion: string): Record<string, string> {
  const m = /^v(\d+)\.(\d+)/.exec(gitVersion);
  return {
    major: m?.[1] ?? "1",
    minor: m?.[2] ?? "31",
    gitVersion,
    gitCommit: "0000000000000000000000000000000000000000",
    gitTreeState: "clean",
    buildDate: "2024-12-10T00:00:00Z",
    goVersion: "go1.22.9",
    compiler: "gc",
    platform: "linux/amd64",
  };
}

function apiResource(d: ResourceDef): Record<string, unknown> {
  const r: Record<string, unknown> = {
    name: d.plural,
    singularName: d.singular,
    namespaced: d.namespaced,
    kind: d.kind,
    verbs: d.review ? ["create"] : ALL_VERBS,
  };
  if (d.shortNames.length) r["shortNames"] = d.shortNames;
  if (d.categories.length) r["categories"] = d.categories;
  r["storageVersionHash"] = Buffer.from(`${d.group}/${d.version}/${d.kind}`).toString("base64").slice(0, 11);
  return r;
}

export function apiVersions(serverAddress: string): Record<string, unknown> {
  return {
    kind: "APIVersions",
    versions: ["v1"],
    serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }],
  };
}

export function apiResourceList(registry: ResourceRegistry, group: string, version: string): Record<string, unknown> {
  const resources: Record<string, unknown>[] = [];
  for (const d of registry.all().filter((x) => x.group === group && x.version === version)) {
    resources.push(apiResource(d));
    if (d.statusSubresource) {
      resources.push({ name: `${d.plural}/status`, singularName: "", namespaced: d.namespaced, kind: d.kind, verbs: ["get", "patch", "update"] });
    }
    if (d.scaleSubresource) {
      resources.push({ name: `${d.plural}/scale`, singularName: "", namespaced: d.namespaced, group: "autoscaling", version: "v1", kind: "Scale", verbs: ["get", "patch", "update"] });
    }
  }
  return { kind: "APIResourceList", apiVersion: "v1", groupVersion: group ? `${group}/${version}` : version, resources };
}

function apiGroup(name: string, versions: string[]): Record<string, unknown> {
  const vs = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
  return { name, versions: vs, preferredVersion: vs[0] };
}

export function apiGroupList(registry: ResourceRegistry): Record<string, unknown> {
  return { kind: "APIGroupList", apiVersion: "v1", groups: registry.groups().map((g) => apiGroup(g.name, g.versions)) };
}

export function apiGroupDoc(registry: ResourceRegistry, group: string): Record<string, unknown> | undefined {
  const g = registry.groups().find((x) => x.name === group);
  if (!g) return undefined;
  return { kind: "APIGroup", apiVersion: "v1", ...apiGroup(g.name, g.versions) };
}
