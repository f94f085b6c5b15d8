/**
 * Maps request paths to what they address, as apiserver's RequestInfo does: the API prefix and group-version,
 * an optional namespace, the resource, an optional name and subresource, and the verb from the method.
 */
import type { ResourceRegistry } from "./crd-registry";
import type { KubeVerb } from "./faults";
import type { ResourceDef } from "./resources";
import { badRequest, methodNotAllowed, pathNotFound } from "./status-errors";

export interface ResourceRoute {
  def: ResourceDef;
  namespace: string | undefined;
  name: string | undefined;
  subresource: "status" | "scale" | undefined;
}

/** Splits /api/v1/... and /apis/{g}/{v}/... into group, version and the rest; undefined for other paths. */
export function splitApiPath(pathname: string): { group: string; version: string; rest: string[] } | undefined {
  let segments: string[];
  try {
    segments = pathname.split("/").filter((s) => s !== "").map((s) => decodeURIComponent(s));
  } catch {
    // A malformed percent-escape cannot name anything; the real server answers 400 for it too.
    throw badRequest(`malformed path: ${pathname.slice(0, 200)}`);
  }
  if (segments[0] === "api" && segments.length >= 2) return { group: "", version: segments[1] as string, rest: segments.slice(2) };
  if (segments[0] === "apis" && segments.length >= 3) return { group: segments[1] as string, version: segments[2] as string, rest: segments.slice(3) };
  return undefined;
}

export function resolveResource(registry: ResourceRegistry, group: string, version: string, rest: string[]): ResourceRoute {
  const find = (plural: string) => registry.find(group, version, plural);
  let namespace: string | undefined;
  let parts = rest;
  if (rest[0] === "namespaces" && rest.length >= 3 && find(rest[2] as string)?.namespaced) {
    namespace = rest[1];
    parts = rest.slice(2);
  }
  if (parts.length === 0 || parts.length > 3) throw pathNotFound();
  const def = find(parts[0] as string);
  if (!def) throw pathNotFound();
  const name = parts[1];
  const sub = parts[2];
  if (def.namespaced && namespace === undefined && name !== undefined) throw pathNotFound();
  if (sub !== undefined && !(sub === "status" && def.statusSubresource) && !(sub === "scale" && def.scaleSubresource)) throw pathNotFound();
  return { def, namespace, name, subresource: sub === "status" || sub === "scale" ? sub : undefined };
}

export function verbOf(method: string, route: ResourceRoute, query: URLSearchParams): KubeVerb {
  const watch = query.get("watch");
  const named = route.name !== undefined;
  // Reviews are create-only, as in kube-apiserver.
  if (route.def.review && method !== "POST") throw methodNotAllowed();
  switch (method) {
    case "GET":
    case "HEAD":
      if (named) return "get";
      return watch === "true" || watch === "1" ? "watch" : "list";
    case "POST":
      if (named || (route.def.namespaced && route.namespace === undefined)) throw methodNotAllowed();
      return "create";
    case "PUT":
      if (!named) throw methodNotAllowed();
      return "update";
    case "PATCH":
      if (!named) throw methodNotAllowed();
      return "patch";
    case "DELETE":
      if (named) {
        if (route.subresource) throw methodNotAllowed();
        return "delete";
      }
      if (route.def.namespaced && route.namespace === undefined) throw methodNotAllowed();
      return "deletecollection";
    default:
      throw methodNotAllowed();
  }
}
