/**
 * Server-side printer columns of the common built-in kinds (between Name and Age), so `kubectl get pods` shows
 * what it shows against a real cluster. Priority 1 columns appear with `-o wide`.
 */
import type { KubeObject, PrinterColumn } from "./resources";
import { metaOf } from "./resources";

type Json = Record<string, unknown>;

function obj(v: unknown): Json {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Json) : {};
}

function list(v: unknown): Json[] {
  return Array.isArray(v) ? v.map(obj) : [];
}

const col = (name: string, type: string, compute: (o: KubeObject) => unknown, priority = 0): PrinterColumn => ({ name, type, jsonPath: "", priority, compute });

function podStatus(o: KubeObject): string {
  if (metaOf(o).deletionTimestamp) return "Terminating";
  const status = obj(o["status"]);
  const waiting = list(status["containerStatuses"]).map((c) => obj(obj(c["state"])["waiting"])["reason"]).find((r) => typeof r === "string");
  return String(waiting ?? status["reason"] ?? status["phase"] ?? "Unknown");
}

function dataCount(o: KubeObject): number {
  return Object.keys(obj(o["data"])).length + Object.keys(obj(o["binaryData"])).length;
}

/** When an event was last / first seen: its series, lastTimestamp / firstTimestamp, else eventTime (as kubectl's printer). */
function eventTime(o: KubeObject, which: "last" | "first"): unknown {
  const series = obj(o["series"]);
  if (which === "last" && typeof series["lastObservedTime"] === "string") return series["lastObservedTime"];
  const stamp = o[which === "last" ? "lastTimestamp" : "firstTimestamp"];
  return typeof stamp === "string" ? stamp : (o["eventTime"] ?? null);
}

/** The event's source as kubectl prints it: `component, host`, or the reporting controller. */
function eventSource(o: KubeObject): string {
  const source = obj(o["source"]);
  const component = typeof source["component"] === "string" && source["component"] ? source["component"] : o["reportingComponent"];
  const host = typeof source["host"] === "string" && source["host"] ? source["host"] : o["reportingInstance"];
  return [component, host].filter((x) => typeof x === "string" && x !== "").join(", ");
}

/**
 * Kinds whose server-side table has its own column set, without the usual Name first and Age last: events, whose
 * rows kubectl prints as LAST SEEN, TYPE, REASON, OBJECT, MESSAGE (the rest with `-o wide`).
 */
export const BUILTIN_FULL_COLUMNS: Record<string, PrinterColumn[]> = {
  events: [
    { ...col("Last Seen", "string", (o) => eventTime(o, "last")), type: "date" },
    col("Type", "string", (o) => o["type"] ?? ""),
    col("Reason", "string", (o) => o["reason"] ?? ""),
    col("Object", "string", (o) => {
      const involved = obj(o["involvedObject"]);
      return `${String(involved["kind"] ?? "").toLowerCase()}/${String(involved["name"] ?? "")}`;
    }),
    col("Subobject", "string", (o) => obj(o["involvedObject"])["fieldPath"] ?? "", 1),
    col("Source", "string", eventSource, 1),
    col("Message", "string", (o) => String(o["message"] ?? "").trim()),
    { ...col("First Seen", "string", (o) => eventTime(o, "first"), 1), type: "date" },
    col("Count", "string", (o) => String(o["count"] ?? obj(o["series"])["count"] ?? 1), 1),
    col("Name", "string", (o) => metaOf(o).name ?? "", 1),
  ],
};

export const BUILTIN_COLUMNS: Record<string, PrinterColumn[]> = {
  pods: [
    col("Ready", "string", (o) => {
      const status = obj(o["status"]);
      const ready = list(status["containerStatuses"]).filter((c) => c["ready"] === true).length;
      return `${ready}/${list(obj(o["spec"])["containers"]).length}`;
    }),
    col("Status", "string", podStatus),
    col("Restarts", "string", (o) => String(list(obj(o["status"])["containerStatuses"]).reduce((n, c) => n + (typeof c["restartCount"] === "number" ? c["restartCount"] : 0), 0))),
    col("IP", "string", (o) => obj(o["status"])["podIP"] ?? "<none>", 1),
    col("Node", "string", (o) => obj(o["spec"])["nodeName"] ?? "<none>", 1),
  ],
  namespaces: [col("Status", "string", (o) => obj(o["status"])["phase"] ?? "")],
  nodes: [
    col("Status", "string", (o) => {
      const ready = list(obj(o["status"])["conditions"]).find((c) => c["type"] === "Ready");
      const base = ready?.["status"] === "True" ? "Ready" : ready?.["status"] === "False" ? "NotReady" : "Unknown";
      return obj(o["spec"])["unschedulable"] === true ? `${base},SchedulingDisabled` : base;
    }),
    col("Roles", "string", (o) => {
      const roles = Object.keys(metaOf(o).labels ?? {}).filter((k) => k.startsWith("node-role.kubernetes.io/")).map((k) => k.slice("node-role.kubernetes.io/".length));
      return roles.length ? roles.join(",") : "<none>";
    }),
    col("Version", "string", (o) => obj(obj(o["status"])["nodeInfo"])["kubeletVersion"] ?? ""),
    col("Internal-IP", "string", (o) => list(obj(o["status"])["addresses"]).find((a) => a["type"] === "InternalIP")?.["address"] ?? "<none>", 1),
  ],
  configmaps: [col("Data", "integer", dataCount)],
  secrets: [col("Type", "string", (o) => o["type"] ?? "Opaque"), col("Data", "integer", dataCount)],
  services: [col("Type", "string", (o) => obj(o["spec"])["type"] ?? "ClusterIP"), col("Cluster-IP", "string", (o) => obj(o["spec"])["clusterIP"] ?? "<none>")],
  "leases.coordination.k8s.io": [col("Holder", "string", (o) => obj(o["spec"])["holderIdentity"] ?? "")],
  "deployments.apps": [
    col("Ready", "string", (o) => `${Number(obj(o["status"])["readyReplicas"] ?? 0)}/${Number(obj(o["spec"])["replicas"] ?? 1)}`),
    col("Up-to-date", "integer", (o) => Number(obj(o["status"])["updatedReplicas"] ?? 0)),
    col("Available", "integer", (o) => Number(obj(o["status"])["availableReplicas"] ?? 0)),
  ],
};
