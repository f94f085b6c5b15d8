import type { IPolicyRule } from "kubernetes-models/rbac.authorization.k8s.io/v1/PolicyRule";
import type { InstallManifest } from "./render-manifests";

/**
 * One API request as an authoriser sees it. From the testbed's `KubeApiServer.requests` every field is known;
 * from `requestCounts()` keys ("list pods", "patch azureidentities/status") group and namespace are not, and
 * then any group and any namespace's Role may match.
 */
export interface ApiRequest {
  verb: string;
  resource: string;
  subresource?: string | undefined;
  group?: string | undefined;
  namespace?: string | undefined;
  name?: string | undefined;
}

/** The rules that apply to one subject: ClusterRole rules everywhere, Role rules in the Role's namespace. */
export interface SubjectRules {
  cluster: IPolicyRule[];
  namespaced: { namespace: string; rules: IPolicyRule[] }[];
}

export interface RbacCoverage {
  /** Requests (with counts) no rule allows. Empty means RBAC covers what the component did. */
  denied: { request: string; count: number }[];
  /** Granted `verb resource` pairs nothing used: either documented extras or rules to remove. */
  unused: string[];
}

/** Parses `requestCounts()` keys, `"<verb> <resource>[/<subresource>]"`. */
export function requestsFromCounts(counts: Readonly<Record<string, number>>): { request: ApiRequest; count: number }[] {
  return Object.entries(counts).map(([key, count]) => {
    const [verb = "", path = ""] = key.split(" ");
    const [resource = "", subresource] = path.split("/");
    return { request: { verb, resource, subresource }, count };
  });
}

/** Collects the rules bound to `system:serviceaccount:<namespace>:<name>` by the rendered (Cluster)RoleBindings. */
export function rulesForServiceAccount(manifests: readonly InstallManifest[], namespace: string, name: string): SubjectRules {
  const result: SubjectRules = { cluster: [], namespaced: [] };
  const isSubject = (subjects: readonly { kind: string; name: string; namespace?: string }[] | undefined): boolean =>
    (subjects ?? []).some((s) => s.kind === "ServiceAccount" && s.name === name && s.namespace === namespace);
  const roleRules = (kind: string, roleName: string, roleNs?: string): IPolicyRule[] => {
    const role = manifests.find((m) => m.kind === kind && m.metadata?.name === roleName && (roleNs === undefined || m.metadata?.namespace === roleNs));
    return (role as { rules?: IPolicyRule[] } | undefined)?.rules ?? [];
  };
  for (const m of manifests) {
    if (m.kind === "ClusterRoleBinding" && isSubject(m.subjects)) {
      result.cluster.push(...roleRules("ClusterRole", m.roleRef.name));
    } else if (m.kind === "RoleBinding" && isSubject(m.subjects)) {
      const ns = m.metadata?.namespace ?? "default";
      const rules = m.roleRef.kind === "ClusterRole" ? roleRules("ClusterRole", m.roleRef.name) : roleRules("Role", m.roleRef.name, ns);
      result.namespaced.push({ namespace: ns, rules });
    }
  }
  return result;
}

const matches = (list: readonly string[] | undefined, value: string): boolean => (list ?? []).includes("*") || (list ?? []).includes(value);

function ruleAllows(rule: IPolicyRule, r: ApiRequest): boolean {
  const resource = r.subresource ? `${r.resource}/${r.subresource}` : r.resource;
  if (r.group !== undefined && !matches(rule.apiGroups, r.group)) return false;
  if (!matches(rule.resources, resource)) return false;
  if (!matches(rule.verbs, r.verb)) return false;
  if (rule.resourceNames && rule.resourceNames.length > 0) {
    // As the API server: a named rule only allows requests for that object, never create, list or a collection watch.
    return r.name !== undefined && rule.resourceNames.includes(r.name);
  }
  return true;
}

function allowed(rules: SubjectRules, r: ApiRequest): boolean {
  if (rules.cluster.some((rule) => ruleAllows(rule, r))) return true;
  return rules.namespaced.some(
    (n) => (r.namespace === undefined || r.namespace === n.namespace) && n.rules.some((rule) => ruleAllows(rule, { ...r, name: r.name ?? nameFor(rule, r) })),
  );
}

const OBJECT_VERBS = new Set(["get", "update", "patch", "delete"]);

/**
 * From counts alone a request's name is unknown: an object verb (get, update, patch, delete) is then assumed to
 * be about the object a name-limited rule names — the Lease, for MIC — while create, list and watch never are.
 */
function nameFor(rule: IPolicyRule, r: ApiRequest): string | undefined {
  return OBJECT_VERBS.has(r.verb) ? rule.resourceNames?.[0] : undefined;
}

/**
 * Checks a component's observed API requests against the RBAC rules rendered for its service account: every
 * request must be allowed (`denied` empty), and every granted verb/resource should have been used (`unused`
 * lists the rest, to compare against the documented extras). Takes `KubeApiServer.requestCounts({ user })` or
 * `KubeApiServer.requests` filtered to the user.
 */
export function checkRbacCoverage(
  observed: Readonly<Record<string, number>> | readonly ApiRequest[],
  rules: SubjectRules,
): RbacCoverage {
  const requests = Array.isArray(observed)
    ? (observed as readonly ApiRequest[]).map((request) => ({ request, count: 1 }))
    : requestsFromCounts(observed as Readonly<Record<string, number>>);
  const denied = new Map<string, number>();
  const used = new Set<string>();
  for (const { request, count } of requests) {
    const key = `${request.verb} ${request.resource}${request.subresource ? `/${request.subresource}` : ""}`;
    used.add(key);
    if (!allowed(rules, request)) denied.set(key, (denied.get(key) ?? 0) + count);
  }
  const unused = new Set<string>();
  for (const rule of [...rules.cluster, ...rules.namespaced.flatMap((n) => n.rules)]) {
    for (const resource of rule.resources ?? []) for (const verb of rule.verbs) if (!used.has(`${verb} ${resource}`)) unused.add(`${verb} ${resource}`);
  }
  return { denied: [...denied].map(([request, count]) => ({ request, count })).sort((a, b) => a.request.localeCompare(b.request)), unused: [...unused].sort() };
}
