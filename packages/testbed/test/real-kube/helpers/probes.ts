import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";
import { azureIdentityCrd } from "../../kube/helpers/crd";
import type { Backend, HttpAnswer } from "./backends";

/**
 * The requests podidentity, its manifests and kubectl make, as probes: each runs against one backend in its own
 * namespace and returns an observation — status, reason and the shape the product relies on, never wording,
 * timestamps or server-chosen values. The conformance suite runs every probe on both backends and compares.
 */
export interface Probe {
  id: string;
  /** What the product or kubectl relies on here. */
  what: string;
  run(b: Backend, ns: string): Promise<unknown>;
}

type Json = Record<string, unknown>;

/** status, Status.reason/code and details' name/kind: what clients branch on. */
function statusOf(a: HttpAnswer): Json {
  const body = typeof a.body === "object" && a.body !== null ? (a.body as Json) : {};
  const out: Json = { status: a.status };
  if (body["kind"] === "Status") {
    out["reason"] = body["reason"];
    out["code"] = body["code"];
    const details = body["details"] as Json | undefined;
    if (details) out["details"] = { name: details["name"], kind: details["kind"], ...(details["group"] ? { group: details["group"] } : {}) };
  } else if (body["kind"]) {
    out["kind"] = body["kind"];
  }
  return out;
}

/**
 * One server-side apply story on a ConfigMap: created by "creator" (labels, data a/b), "editor" merge-patches b,
 * "applier" applies conflicting values (409), then the shared values plus c, then forces a, then drops b and c.
 */
async function ssaSequence(b: Backend, ns: string) {
  const url = `/api/v1/namespaces/${ns}/configmaps/owned`;
  const entries = (a: HttpAnswer) =>
    ((meta(a.body)["managedFields"] as Json[] | undefined) ?? []).map((f) => ({ manager: f["manager"], operation: f["operation"], apiVersion: f["apiVersion"], fieldsType: f["fieldsType"], fieldsV1: f["fieldsV1"] }));
  const applyYaml = (data: Record<string, string>) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\ndata:\n${Object.entries(data).map(([k, v]) => `  ${k}: "${v}"\n`).join("")}`;
  const apply = (data: Record<string, string>, query: string) => b.http("PATCH", `${url}?${query}`, { raw: applyYaml(data), contentType: "application/apply-patch+yaml" });
  const created = await b.http("POST", `/api/v1/namespaces/${ns}/configmaps?fieldManager=creator`, { body: { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "owned", labels: { app: "x" } }, data: { a: "1", b: "1" } } });
  const patched = await b.http("PATCH", `${url}?fieldManager=editor`, { body: { data: { b: "2" } }, contentType: "application/merge-patch+json" });
  const conflict = await apply({ a: "9", b: "9", c: "3" }, "fieldManager=applier");
  const conflictBody = (conflict.body ?? {}) as Json;
  const causes = ((conflictBody["details"] as Json | undefined)?.["causes"] as Json[] | undefined) ?? [];
  const shared = await apply({ a: "1", b: "2", c: "3" }, "fieldManager=applier");
  const forced = await apply({ a: "9", b: "2", c: "3" }, "fieldManager=applier&force=true");
  const shrunk = await apply({ a: "9" }, "fieldManager=applier");
  const noManager = await b.http("PATCH", url, { raw: applyYaml({ a: "9" }), contentType: "application/apply-patch+yaml" });
  return {
    created: { ...statusOf(created), entries: entries(created) },
    patched: entries(patched),
    // The causes' order is the server's map iteration order: compared sorted.
    conflict: { ...statusOf(conflict), message: conflictBody["message"], causes: [...causes].sort((x, y) => String(x["field"]).localeCompare(String(y["field"]))) },
    shared: { ...statusOf(shared), entries: entries(shared) },
    forced: { ...statusOf(forced), entries: entries(forced), data: (forced.body as Json | undefined)?.["data"] },
    shrunk: { data: (shrunk.body as Json | undefined)?.["data"], entries: entries(shrunk) },
    noManager: { ...statusOf(noManager), message: ((noManager.body ?? {}) as Json)["message"] },
  };
}

/**
 * What `kubectl explain` says, without its layout (v2 and v3 print differently: `RESOURCE:`/`FIELD:`, `<Object>`
 * vs the type's name, `VERSION: apps/v1` vs `GROUP: apps` + `VERSION: v1`) or what changes between Kubernetes
 * versions (descriptions, fields added to nested types): the kind and apiVersion, the field and a leaf's type,
 * whether there is a description, the field names listed at the top level, and whether nested ones are listed.
 */
function explainSummary(stdout: string): Json {
  const header = (name: string) => new RegExp(`^${name}:\\s+(\\S+)`, "m").exec(stdout)?.[1];
  const group = header("GROUP");
  const version = header("VERSION");
  const field = /^(?:FIELD|RESOURCE):\s+(\S+) <([^>]+)>/m.exec(stdout);
  const type = field?.[2];
  const description = /^DESCRIPTION:\n((?: +\S.*\n)+)/m.exec(stdout)?.[1]?.trim() ?? "";
  const listed = [...stdout.matchAll(/^( +)(\w+)\t</gm)].map((m) => ({ depth: (m[1] as string).length, name: m[2] as string }));
  const top = Math.min(...listed.map((f) => f.depth));
  return {
    kind: header("KIND"),
    apiVersion: group ? `${group}/${version}` : version,
    field: field?.[1],
    leafType: type === "string" || type === "integer" || type === "boolean" ? type : undefined,
    described: description.length > 0,
    fields: listed.filter((f) => f.depth === top).map((f) => f.name),
    nested: listed.some((f) => f.depth > top),
  };
}

const pod = (name: string, extra: Json = {}): Json => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, labels: { app: name } },
  spec: { nodeName: "n1", containers: [{ name: "app", image: "app:1" }] },
  ...extra,
});
const podsUrl = (ns: string) => `/api/v1/namespaces/${ns}/pods`;
const azidUrl = (ns: string) => `/apis/aadpodidentity.k8s.io/v1/namespaces/${ns}/azureidentities`;
const azid = (name: string, spec: Json, extra: Json = {}): Json => ({ apiVersion: "aadpodidentity.k8s.io/v1", kind: "AzureIdentity", metadata: { name }, spec, ...extra });
const meta = (o: unknown): Json => ((o as Json)["metadata"] ?? {}) as Json;
const names = (list: unknown): string[] => (((list as Json)["items"] as Json[]) ?? []).map((i) => String(meta(i)["name"])).sort();

async function create(b: Backend, url: string, body: Json): Promise<Json> {
  const r = await b.http("POST", url, { body });
  if (r.status !== 201) throw new Error(`${b.name}: POST ${url} answered ${r.status}: ${r.text}`);
  return r.body as Json;
}

function clientConfig(b: Backend): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromString(b.kubeconfigText);
  return kc;
}

async function apiError(p: Promise<unknown>): Promise<Json> {
  try {
    await p;
    return { ok: true };
  } catch (err) {
    const e = err as { code?: number; body?: unknown };
    const body = typeof e.body === "string" ? (JSON.parse(e.body) as Json) : ((e.body ?? {}) as Json);
    return { code: e.code, reason: body["reason"] };
  }
}

/**
 * Reads a watch (the path carries timeoutSeconds, so the server ends it) and returns the first `keep` events as
 * [type, object name] or [ERROR, {code, reason}]. `act` runs while the watch is open; the watch starts from a
 * resourceVersion taken before `act`, so both servers deliver its events whenever the watch registers.
 */
async function watchEvents(b: Backend, path: string, keep: number, act?: () => Promise<void>): Promise<Array<[string, unknown]>> {
  const answer = b.http("GET", path);
  if (act) await act();
  const r = await answer;
  const events = r.text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as { type: string; object: Json });
  return events.slice(0, keep).map((e) => [e.type, e.type === "ERROR" ? { code: e.object["code"], reason: e.object["reason"] } : meta(e.object)["name"]]);
}

export const PROBES: Probe[] = [
  // ---- discovery ----
  {
    id: "discovery /api",
    what: "client-node and kubectl discovery",
    run: async (b) => {
      const r = await b.http("GET", "/api");
      return { ...statusOf(r), versions: r.body.versions };
    },
  },
  {
    id: "discovery /apis groups",
    what: "kubectl's group discovery, the CRD's group appears",
    run: async (b) => {
      const r = await b.http("GET", "/apis");
      const wanted = ["apps", "coordination.k8s.io", "rbac.authorization.k8s.io", "apiextensions.k8s.io", "aadpodidentity.k8s.io"];
      const groups = (r.body.groups as Array<{ name: string; preferredVersion: { version: string } }>).filter((g) => wanted.includes(g.name));
      return { ...statusOf(r), groups: groups.map((g) => `${g.name}/${g.preferredVersion.version}`).sort() };
    },
  },
  {
    id: "discovery core pods resource",
    what: "pods and pods/status verbs, namespaced, kind",
    run: async (b) => {
      const r = await b.http("GET", "/api/v1");
      const res = (r.body.resources as Array<{ name: string; namespaced: boolean; kind: string; verbs: string[] }>).filter((x) => x.name === "pods" || x.name === "pods/status");
      return res.map((x) => ({ name: x.name, namespaced: x.namespaced, kind: x.kind, verbs: [...x.verbs].sort() }));
    },
  },
  {
    id: "discovery leases",
    what: "MIC's leader election finds coordination.k8s.io/v1 leases",
    run: async (b) => {
      const r = await b.http("GET", "/apis/coordination.k8s.io/v1");
      const lease = (r.body.resources as Array<{ name: string; namespaced: boolean; verbs: string[] }>).find((x) => x.name === "leases");
      return { ...statusOf(r), namespaced: lease?.namespaced, verbs: [...(lease?.verbs ?? [])].sort() };
    },
  },
  // ---- create / get / errors ----
  {
    id: "create pod",
    what: "metadata the server fills in; pods start Pending",
    run: async (b, ns) => {
      const r = await b.http("POST", podsUrl(ns), { body: pod("web") });
      const m = meta(r.body);
      return { ...statusOf(r), apiVersion: r.body.apiVersion, namespace: m["namespace"], uid: typeof m["uid"], resourceVersion: typeof m["resourceVersion"], creationTimestamp: typeof m["creationTimestamp"], phase: r.body.status?.phase };
    },
  },
  {
    id: "create existing name",
    what: "409 AlreadyExists with details",
    run: async (b, ns) => {
      await create(b, podsUrl(ns), pod("web"));
      return statusOf(await b.http("POST", podsUrl(ns), { body: pod("web") }));
    },
  },
  {
    id: "get missing object",
    what: "404 NotFound with details; the message clients print",
    run: async (b, ns) => {
      const r = await b.http("GET", `${podsUrl(ns)}/missing`);
      return { ...statusOf(r), message: r.body.message };
    },
  },
  {
    id: "create in missing namespace",
    what: "404 NotFound naming the namespace",
    run: async (b) => {
      const r = await b.http("POST", podsUrl("no-such-namespace"), { body: pod("web") });
      return { ...statusOf(r), message: r.body.message };
    },
  },
  {
    id: "update with stale resourceVersion",
    what: "409 Conflict drives every read-modify-write retry in MIC",
    run: async (b, ns) => {
      const created = await create(b, podsUrl(ns), pod("web"));
      await b.http("PATCH", `${podsUrl(ns)}/web`, { body: { metadata: { labels: { x: "1" } } }, contentType: "application/merge-patch+json" });
      const r = await b.http("PUT", `${podsUrl(ns)}/web`, { body: created });
      return statusOf(r);
    },
  },
  {
    id: "create built-in without apiVersion/kind",
    what: "the REST path names the type; real servers default it",
    run: async (b, ns) => {
      const r = await b.http("POST", podsUrl(ns), { body: { metadata: { name: "bare" }, spec: { containers: [{ name: "app", image: "app:1" }] } } });
      return { ...statusOf(r), apiVersion: r.body.apiVersion };
    },
  },
  {
    id: "create built-in without kind",
    what: "the typed decoder defaults a missing kind from the URL",
    run: async (b, ns) => {
      const r = await b.http("POST", `/api/v1/namespaces/${ns}/configmaps`, { body: { apiVersion: "v1", metadata: { name: "nokind" } } });
      return { ...statusOf(r), apiVersion: r.body.apiVersion };
    },
  },
  {
    id: "create custom resource without kind",
    what: "custom resources are decoded unstructured: kind is required",
    run: async (b, ns) => statusOf(await b.http("POST", azidUrl(ns), { body: { apiVersion: "aadpodidentity.k8s.io/v1", metadata: { name: "nokind" }, spec: { type: 0 } } })),
  },
  {
    id: "delete pod with gracePeriodSeconds=0",
    what: "a kubelet's final delete, and `kubectl delete --grace-period=0 --force`: the pod is gone at once",
    run: async (b, ns) => {
      await create(b, podsUrl(ns), pod("gone"));
      const del = await b.http("DELETE", `${podsUrl(ns)}/gone?gracePeriodSeconds=0`);
      return { del: del.status, after: (await b.http("GET", `${podsUrl(ns)}/gone`)).status };
    },
  },
  {
    id: "unknown field in a built-in",
    what: "undeclared fields of built-in kinds are dropped, not stored",
    run: async (b, ns) => {
      const r = await b.http("POST", podsUrl(ns), { body: pod("web", { spec: { bogus: 1, containers: [{ name: "app", image: "app:1" }] } }) });
      return { ...statusOf(r), stored: r.body.spec?.bogus !== undefined };
    },
  },
  {
    id: "wrongly typed field in a built-in",
    what: "a string where a list belongs is a 400",
    run: async (b, ns) => statusOf(await b.http("POST", podsUrl(ns), { body: pod("web", { spec: { containers: "app" } }) })),
  },
  {
    id: "malformed JSON",
    what: "400 BadRequest",
    run: async (b, ns) => statusOf(await b.http("POST", podsUrl(ns), { raw: "{not json" })),
  },
  {
    id: "PUT with a name different from the URL",
    what: "400 BadRequest",
    run: async (b, ns) => {
      const created = await create(b, podsUrl(ns), pod("web"));
      return statusOf(await b.http("PUT", `${podsUrl(ns)}/web`, { body: { ...created, metadata: { ...meta(created), name: "other" } } }));
    },
  },
  {
    id: "forbidden pod spec update",
    what: "pod spec is immutable except images and a few fields: 422 Invalid",
    run: async (b, ns) => {
      await create(b, podsUrl(ns), pod("web"));
      return statusOf(await b.http("PATCH", `${podsUrl(ns)}/web`, { body: { spec: { nodeName: "n2" } }, contentType: "application/merge-patch+json" }));
    },
  },
  {
    id: "413 for a body over 3 MiB",
    what: "request size bound",
    run: async (b, ns) => {
      const big = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "big" }, data: { x: "a".repeat(3 * 1024 * 1024 + 10) } };
      return { status: (await b.http("POST", `/api/v1/namespaces/${ns}/configmaps`, { body: big })).status };
    },
  },
  // ---- patch / status ----
  {
    id: "pod status through /status",
    what: "the topology's kubelet and MIC write status through the subresource",
    run: async (b, ns) => {
      await create(b, podsUrl(ns), pod("web"));
      const r = await b.http("PATCH", `${podsUrl(ns)}/web/status`, { body: { status: { phase: "Running", podIP: "10.244.0.10" } }, contentType: "application/merge-patch+json" });
      const main = await b.http("PATCH", `${podsUrl(ns)}/web`, { body: { status: { phase: "Failed" } }, contentType: "application/merge-patch+json" });
      return { ...statusOf(r), phase: r.body.status?.phase, podIP: r.body.status?.podIP, afterMainWrite: main.body.status?.phase };
    },
  },
  {
    id: "strategic merge patch of containers",
    what: "kubectl apply on built-ins: containers merge by name",
    run: async (b, ns) => {
      await create(b, podsUrl(ns), pod("web"));
      const r = await b.http("PATCH", `${podsUrl(ns)}/web`, { body: { spec: { containers: [{ name: "app", image: "app:2" }] } }, contentType: "application/strategic-merge-patch+json" });
      return { ...statusOf(r), containers: (r.body.spec?.containers as Json[]).map((c) => `${String(c["name"])}=${String(c["image"])}`) };
    },
  },
  {
    id: "json patch with a failing test",
    what: "422 on a failed test op",
    run: async (b, ns) => {
      await create(b, podsUrl(ns), pod("web"));
      return statusOf(await b.http("PATCH", `${podsUrl(ns)}/web`, { body: [{ op: "test", path: "/metadata/name", value: "other" }], contentType: "application/json-patch+json" }));
    },
  },
  {
    id: "server-side apply",
    what: "kubectl apply --server-side and helm 4's default",
    run: async (b, ns) => {
      const yaml = `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: "1"\n`;
      const r = await b.http("PATCH", `/api/v1/namespaces/${ns}/configmaps/ssa?fieldManager=probe`, { raw: yaml, contentType: "application/apply-patch+yaml" });
      return { ...statusOf(r), managedBy: ((meta(r.body)["managedFields"] as Json[] | undefined) ?? []).map((f) => f["manager"]) };
    },
  },
  {
    id: "server-side apply: ownership and conflicts",
    what: "managedFields (manager, operation, FieldsV1) after a create, a merge patch and applies; the 409 an apply gets for other managers' fields; force=true; apply without fieldManager",
    run: async (b, ns) => {
      const r = await ssaSequence(b, ns);
      return { created: r.created, patched: r.patched, conflict: r.conflict, shared: r.shared, forced: r.forced, noManager: r.noManager };
    },
  },
  {
    id: "no-op writes",
    what: "an unchanged PUT, merge patch, strategic patch or apply (by the object's managers or others) stores nothing: same resourceVersion and managedFields (kubectl apply twice; informers see no event)",
    run: async (b, ns) => {
      const url = `/api/v1/namespaces/${ns}/configmaps/still`;
      await b.http("POST", `/api/v1/namespaces/${ns}/configmaps?fieldManager=creator`, { body: { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "still", labels: { app: "x" } }, data: { a: "1" } } });
      const applyYaml = `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: still\ndata:\n  a: "1"\n  b: "2"\n`;
      const applied = await b.http("PATCH", `${url}?fieldManager=applier`, { raw: applyYaml, contentType: "application/apply-patch+yaml" });
      const before = meta(applied.body);
      const same = (a: HttpAnswer) => ({ ...statusOf(a), sameResourceVersion: meta(a.body)["resourceVersion"] === before["resourceVersion"], sameManagedFields: JSON.stringify(meta(a.body)["managedFields"]) === JSON.stringify(before["managedFields"]) });
      const { managedFields: _dropped, ...withoutFields } = before;
      return {
        put: same(await b.http("PUT", `${url}?fieldManager=creator`, { body: applied.body })),
        putByAnother: same(await b.http("PUT", `${url}?fieldManager=someone-else`, { body: applied.body })),
        putWithoutManagedFields: same(await b.http("PUT", url, { body: { ...(applied.body as Json), metadata: withoutFields } })),
        mergePatch: same(await b.http("PATCH", `${url}?fieldManager=editor`, { body: { data: { b: "2" } }, contentType: "application/merge-patch+json" })),
        strategicPatch: same(await b.http("PATCH", `${url}?fieldManager=editor`, { body: { metadata: { labels: { app: "x" } } }, contentType: "application/strategic-merge-patch+json" })),
        apply: same(await b.http("PATCH", `${url}?fieldManager=applier`, { raw: applyYaml, contentType: "application/apply-patch+yaml" })),
      };
    },
  },
  {
    id: "server-side apply: removal",
    what: "after a forced apply, an apply that stops sending fields it applied",
    run: async (b, ns) => {
      const r = await ssaSequence(b, ns);
      return { shrunk: r.shrunk };
    },
  },
  // ---- list / watch ----
  {
    id: "label and field selectors",
    what: "MIC/NMI list pods by node (spec.nodeName) and by label",
    run: async (b, ns) => {
      await create(b, podsUrl(ns), pod("a"));
      await create(b, podsUrl(ns), { ...pod("b"), spec: { nodeName: "n2", containers: [{ name: "app", image: "app:1" }] } });
      const byLabel = await b.http("GET", `${podsUrl(ns)}?labelSelector=${encodeURIComponent("app in (a,c)")}`);
      const byField = await b.http("GET", `${podsUrl(ns)}?fieldSelector=${encodeURIComponent("spec.nodeName=n2")}`);
      const badLabel = await b.http("GET", `${podsUrl(ns)}?labelSelector=${encodeURIComponent("app in (a")}`);
      const badField = await b.http("GET", `${podsUrl(ns)}?fieldSelector=${encodeURIComponent("spec.bogus=x")}`);
      return { byLabel: names(byLabel.body), byField: names(byField.body), badLabel: statusOf(badLabel), badField: statusOf(badField) };
    },
  },
  {
    id: "paging with limit and continue",
    what: "client-node's list pager",
    run: async (b, ns) => {
      for (const n of ["a", "b", "c"]) await create(b, podsUrl(ns), pod(n));
      const first = await b.http("GET", `${podsUrl(ns)}?limit=2`);
      const next = await b.http("GET", `${podsUrl(ns)}?limit=2&continue=${encodeURIComponent(String(first.body.metadata.continue))}`);
      const bad = await b.http("GET", `${podsUrl(ns)}?limit=2&continue=garbage`);
      return { first: names(first.body), remaining: first.body.metadata.remainingItemCount, next: names(next.body), nextContinue: next.body.metadata.continue ?? "", bad: statusOf(bad) };
    },
  },
  {
    id: "watch from a list's resourceVersion",
    what: "informers: list, then watch from its resourceVersion; ADDED/MODIFIED/DELETED",
    run: async (b, ns) => {
      const list = await b.http("GET", `/api/v1/namespaces/${ns}/configmaps`);
      const rv = String(list.body.metadata.resourceVersion);
      const cms = `/api/v1/namespaces/${ns}/configmaps`;
      return watchEvents(b, `${cms}?watch=true&resourceVersion=${rv}&timeoutSeconds=2`, 4, async () => {
        await create(b, cms, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "w" } });
        await b.http("PATCH", `${cms}/w`, { body: { metadata: { labels: { x: "1" } } }, contentType: "application/merge-patch+json" });
        await b.http("DELETE", `${cms}/w`);
      });
    },
  },
  {
    id: "watch from an expired resourceVersion",
    what: "informers relist on a 410 Expired ERROR event",
    run: async (b, ns) => {
      await create(b, podsUrl(ns), pod("old"));
      await b.forgetHistory();
      return watchEvents(b, `${podsUrl(ns)}?watch=true&resourceVersion=1&timeoutSeconds=2`, 1);
    },
  },
  // ---- deletion ----
  {
    id: "delete with a finalizer, then release it",
    what: "MIC's AzureAssignedIdentity finalizer: marked, refuses new finalizers, gone when the last is removed",
    run: async (b, ns) => {
      await create(b, `/api/v1/namespaces/${ns}/configmaps`, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "f", finalizers: ["example.com/keep"] } });
      const del = await b.http("DELETE", `/api/v1/namespaces/${ns}/configmaps/f`);
      const marked = await b.http("GET", `/api/v1/namespaces/${ns}/configmaps/f`);
      const add = await b.http("PATCH", `/api/v1/namespaces/${ns}/configmaps/f`, { body: { metadata: { finalizers: ["example.com/keep", "example.com/more"] } }, contentType: "application/merge-patch+json" });
      const release = await b.http("PATCH", `/api/v1/namespaces/${ns}/configmaps/f`, { body: { metadata: { finalizers: null } }, contentType: "application/merge-patch+json" });
      const gone = await b.http("GET", `/api/v1/namespaces/${ns}/configmaps/f`);
      return { del: del.status, marked: typeof meta(marked.body)["deletionTimestamp"], add: statusOf(add), release: release.status, gone: gone.status };
    },
  },
  {
    id: "delete a missing object; bad propagationPolicy",
    what: "404 on delete; DeleteOptions validated",
    run: async (b, ns) => {
      const missing = await b.http("DELETE", `/api/v1/namespaces/${ns}/configmaps/none`);
      await create(b, `/api/v1/namespaces/${ns}/configmaps`, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x" } });
      const bad = await b.http("DELETE", `/api/v1/namespaces/${ns}/configmaps/x`, { body: { kind: "DeleteOptions", apiVersion: "v1", propagationPolicy: "Bogus" } });
      return { missing: statusOf(missing), bad: statusOf(bad) };
    },
  },
  {
    id: "dryRun=All create",
    what: "kubectl --dry-run=server",
    run: async (b, ns) => {
      const r = await b.http("POST", `${podsUrl(ns)}?dryRun=All`, { body: pod("dry") });
      return { created: r.status, stored: (await b.http("GET", `${podsUrl(ns)}/dry`)).status };
    },
  },
  {
    id: "namespace deletion",
    what: "uninstall: the namespace goes Terminating and refuses new content",
    run: async (b, ns) => {
      await create(b, `/api/v1/namespaces/${ns}/configmaps`, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "hold", finalizers: ["example.com/keep"] } });
      const del = await b.http("DELETE", `/api/v1/namespaces/${ns}`);
      const after = await b.http("POST", `/api/v1/namespaces/${ns}/configmaps`, { body: { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "late" } } });
      return { del: del.status, phase: del.body.status?.phase, createAfter: statusOf(after) };
    },
  },
  // ---- leases and events (MIC) ----
  {
    id: "lease create and conflicting update",
    what: "MIC's leader election",
    run: async (b, ns) => {
      const url = `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`;
      const spec = { holderIdentity: "mic-a", leaseDurationSeconds: 15, acquireTime: "2026-01-01T00:00:00.000000Z", renewTime: "2026-01-01T00:00:00.000000Z", leaseTransitions: 0 };
      const created = await b.http("POST", url, { body: { apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { name: "l" }, spec } });
      const ok = await b.http("PUT", `${url}/l`, { body: { ...created.body, spec: { ...spec, holderIdentity: "mic-b" } } });
      const stale = await b.http("PUT", `${url}/l`, { body: { ...created.body, spec: { ...spec, holderIdentity: "mic-c" } } });
      return { created: created.status, renewTime: created.body.spec?.renewTime, ok: ok.status, stale: statusOf(stale) };
    },
  },
  {
    id: "core/v1 event",
    what: "MIC records events on pods and bindings",
    run: async (b, ns) => {
      const r = await b.http("POST", `/api/v1/namespaces/${ns}/events`, {
        body: { apiVersion: "v1", kind: "Event", metadata: { name: "e1" }, involvedObject: { kind: "Pod", namespace: ns, name: "web", apiVersion: "v1" }, reason: "binding applied", message: "m", type: "Normal", source: { component: "mic" } },
      });
      return { ...statusOf(r), reason: r.body.reason, count: r.body.count ?? null };
    },
  },
  // ---- custom resources ----
  {
    id: "CRD in a protected group without approval",
    what: "*.k8s.io CRDs (aad-pod-identity's group) need the api-approved.kubernetes.io annotation",
    run: async (b) => {
      const crd = azureIdentityCrd();
      const bare = { ...crd, metadata: { name: "widgets.probe.k8s.io" }, spec: { ...crd.spec, group: "probe.k8s.io", names: { plural: "widgets", kind: "Widget" } } };
      const r = await b.http("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", { body: bare });
      const causes = ((r.body.details?.causes as Json[] | undefined) ?? []).map((c) => ({ field: c["field"], reason: c["reason"] }));
      return { ...statusOf(r), causes };
    },
  },
  {
    id: "custom resource: pruning and defaults",
    what: "undeclared fields pruned, defaults applied, legacy capitalised keys kept",
    run: async (b, ns) => {
      const r = await b.http("POST", azidUrl(ns), { body: azid("id", { type: 0, ClientID: "c", undeclared: true }, { extra: 1 }) });
      return { ...statusOf(r), spec: r.body.spec, extra: r.body.extra ?? null, generation: meta(r.body)["generation"] };
    },
  },
  {
    id: "custom resource: invalid field",
    what: "schema validation: 422 Invalid with the field path",
    run: async (b, ns) => {
      const r = await b.http("POST", azidUrl(ns), { body: azid("id", { type: "zero" }) });
      const causes = ((r.body.details?.causes as Json[] | undefined) ?? []).map((c) => ({ field: c["field"], reason: c["reason"] }));
      return { ...statusOf(r), causes };
    },
  },
  {
    id: "custom resource: strategic merge patch",
    what: "kubectl sends merge patches to CRs: strategic is 415",
    run: async (b, ns) => {
      await create(b, azidUrl(ns), azid("id", { type: 0 }));
      return statusOf(await b.http("PATCH", `${azidUrl(ns)}/id`, { body: { spec: { type: 1 } }, contentType: "application/strategic-merge-patch+json" }));
    },
  },
  {
    id: "custom resource: status subresource and generation",
    what: "MIC writes status through /status; spec changes bump generation, status writes do not",
    run: async (b, ns) => {
      await create(b, azidUrl(ns), azid("id", { type: 0 }));
      const st = await b.http("PATCH", `${azidUrl(ns)}/id/status`, { body: { status: { state: "Assigned" } }, contentType: "application/merge-patch+json" });
      const main = await b.http("PATCH", `${azidUrl(ns)}/id`, { body: { spec: { type: 1 }, status: { state: "Ignored" } }, contentType: "application/merge-patch+json" });
      return { status: st.status, state: st.body.status?.state, genAfterStatus: meta(st.body)["generation"], genAfterSpec: meta(main.body)["generation"], stateAfterMain: main.body.status?.state };
    },
  },
  {
    id: "custom resource: PUT without resourceVersion",
    what: "custom resources have no unconditional update",
    run: async (b, ns) => {
      await create(b, azidUrl(ns), azid("id", { type: 0 }));
      return statusOf(await b.http("PUT", `${azidUrl(ns)}/id`, { body: azid("id", { type: 1 }) }));
    },
  },
  {
    id: "custom resource: fieldValidation=Strict",
    what: "kubectl >= 1.25 asks the server to validate fields",
    run: async (b, ns) => statusOf(await b.http("POST", `${azidUrl(ns)}?fieldValidation=Strict`, { body: azid("id", { type: 0, undeclared: 1 }) })),
  },
  // ---- authentication and authorisation ----
  {
    id: "no token",
    what: "what an unauthenticated client sees",
    run: async (b) => {
      const api = await b.http("GET", "/api/v1/namespaces", { token: null });
      const version = await b.http("GET", "/version", { token: null });
      return { api: statusOf(api), version: version.status };
    },
  },
  {
    id: "unknown token",
    what: "a wrong or revoked token is 401",
    run: async (b) => statusOf(await b.http("GET", "/api/v1/namespaces", { token: "wrong" })),
  },
  {
    id: "RBAC: an account without rules",
    what: "least privilege of the product's service accounts",
    run: async (b, ns) => statusOf(await b.http("GET", podsUrl(ns), { token: "nobody" })),
  },
  // ---- @kubernetes/client-node ----
  {
    id: "client-node: read missing pod, create and list custom objects",
    what: "the product's client library on both servers",
    run: async (b, ns) => {
      const kc = clientConfig(b);
      const core = kc.makeApiClient(CoreV1Api);
      const custom = kc.makeApiClient(CustomObjectsApi);
      const missing = await apiError(core.readNamespacedPod({ name: "missing", namespace: ns }));
      await custom.createNamespacedCustomObject({ group: "aadpodidentity.k8s.io", version: "v1", namespace: ns, plural: "azureidentities", body: azid("c1", { type: 0 }) });
      const list = (await custom.listNamespacedCustomObject({ group: "aadpodidentity.k8s.io", version: "v1", namespace: ns, plural: "azureidentities" })) as Json;
      return { missing, listed: names(list) };
    },
  },
  {
    id: "client-node: lease replace with a stale resourceVersion",
    what: "leader election through CoordinationV1Api",
    run: async (b, ns) => {
      const api = clientConfig(b).makeApiClient(CoordinationV1Api);
      const created = await api.createNamespacedLease({ namespace: ns, body: { metadata: { name: "l" }, spec: { holderIdentity: "a", leaseDurationSeconds: 15 } } });
      await api.replaceNamespacedLease({ name: "l", namespace: ns, body: { ...created, spec: { holderIdentity: "b", leaseDurationSeconds: 15 } } });
      return apiError(api.replaceNamespacedLease({ name: "l", namespace: ns, body: { ...created, spec: { holderIdentity: "c", leaseDurationSeconds: 15 } } }));
    },
  },
  // ---- kubectl ----
  {
    id: "kubectl get, apply, delete",
    what: "the user's commands on the product's resources",
    run: async (b, ns) => {
      const manifest = await b.file(`${ns}.yaml`, `apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentity\nmetadata:\n  name: k1\n  namespace: ${ns}\nspec:\n  type: 0\n  clientID: abc\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: k2\n  namespace: ${ns}\ndata:\n  a: "1"\n`);
      const first = await b.kubectl("apply", "-f", manifest);
      const again = await b.kubectl("apply", "-f", manifest);
      const get = await b.kubectl("get", "azureidentities", "-n", ns, "-o", "name");
      const table = await b.kubectl("get", "azureidentities", "-n", ns);
      const del = await b.kubectl("delete", "configmap", "k2", "-n", ns);
      return { first: first.stdout.trim(), again: again.stdout.trim(), get: get.stdout.trim(), header: table.stdout.split("\n")[0]!.split(/\s+/), del: del.stdout.trim(), codes: [first.code, again.code, get.code, table.code, del.code] };
    },
  },
  {
    id: "kubectl get missing",
    what: "kubectl's NotFound message",
    run: async (b, ns) => {
      const r = await b.kubectl("get", "pod", "nope", "-n", ns);
      return { code: r.code, stderr: r.stderr.trim() };
    },
  },
  {
    id: "kubectl auth can-i",
    what: "checking the rendered RBAC by hand",
    run: async (b, ns) => {
      const r = await b.kubectl("auth", "can-i", "list", "pods", "-n", ns);
      return { code: r.code, stdout: r.stdout.trim() };
    },
  },
  {
    id: "kubectl explain",
    what: "field documentation from the server's OpenAPI (kubectl reads /openapi/v3, and /openapi/v2 from a 1.20 server, which has no v3)",
    run: async (b) => {
      const leaf = await b.kubectl("explain", "pod.spec.nodeName");
      const selector = await b.kubectl("explain", "deployment.spec.selector");
      const recursive = await b.kubectl("explain", "configmap", "--recursive");
      const missing = await b.kubectl("explain", "nosuchthing");
      return {
        codes: [leaf.code, selector.code, recursive.code, missing.code],
        leaf: explainSummary(leaf.stdout),
        selector: explainSummary(selector.stdout),
        recursive: explainSummary(recursive.stdout),
        missing: missing.stderr.trim(),
      };
    },
  },
];
