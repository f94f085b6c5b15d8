/**
 * Query parameters of list and watch requests, parsed and checked as the API server does: selectors (400 when
 * invalid), `limit`, `continue` tokens, `resourceVersion` and `resourceVersionMatch`, `timeoutSeconds`.
 */
import type { ResourceDef } from "./resources";
import { fieldString, metaOf } from "./resources";
import type { KubeObject } from "./resources";
import type { FieldSelector, LabelSelector } from "./selectors";
import { parseFieldSelector, parseLabelSelector } from "./selectors";
import { badRequest, invalid } from "./status-errors";

export interface ListOptions {
  labelSelector: LabelSelector;
  fieldSelector: FieldSelector;
  /** True when either selector restricts the result (remainingItemCount is then omitted). */
  filtered: boolean;
  limit: number;
  continueToken: ContinueToken | undefined;
  /** undefined: unset; 0: "any"; otherwise a resourceVersion. */
  resourceVersion: number | undefined;
  resourceVersionMatch: "NotOlderThan" | "Exact" | undefined;
  timeoutSeconds: number | undefined;
  allowWatchBookmarks: boolean;
  sendInitialEvents: boolean | undefined;
}

export interface ContinueToken {
  rv: number;
  /** Key (namespace/name) of the last item returned; the next page starts after it. */
  start: string;
}

export function encodeContinue(token: ContinueToken): string {
  return Buffer.from(JSON.stringify({ v: "meta.k8s.io/v1", rv: token.rv, start: `${token.start}\u0000` })).toString("base64url");
}

function decodeContinue(raw: string): ContinueToken {
  try {
    const parsed = JSON.parse(Buffer.from(raw, "base64url").toString("utf8")) as { v?: unknown; rv?: unknown; start?: unknown };
    if (parsed.v !== "meta.k8s.io/v1" || typeof parsed.rv !== "number" || typeof parsed.start !== "string") throw new Error("bad shape");
    return { rv: parsed.rv, start: parsed.start.endsWith("\u0000") ? parsed.start.slice(0, -1) : parsed.start };
  } catch {
    // Anything that is not a token we issued is the client's error, as for the real server.
    throw badRequest(`continue key is not valid: ${raw.slice(0, 100)}`);
  }
}

function parseRv(raw: string, param: string): number {
  if (!/^\d+$/.test(raw)) throw badRequest(`invalid ${param}: ${JSON.stringify(raw)}: must be a non-negative integer`);
  return Number(raw);
}

function boolParam(q: URLSearchParams, name: string): boolean | undefined {
  const v = q.get(name);
  if (v === null) return undefined;
  if (v === "" || v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw badRequest(`invalid ${name}: ${JSON.stringify(v)}`);
}

export function supportedFieldLabels(def: ResourceDef): Set<string> {
  return new Set(["metadata.name", "metadata.namespace", ...Object.keys(def.fieldLabels)]);
}

export function parseListOptions(def: ResourceDef, q: URLSearchParams, watch: boolean): ListOptions {
  const labelRaw = q.get("labelSelector") ?? undefined;
  const fieldRaw = q.get("fieldSelector") ?? undefined;
  const labelSelector = parseLabelSelector(labelRaw);
  const fieldSelector = parseFieldSelector(fieldRaw, supportedFieldLabels(def));
  const limitRaw = q.get("limit");
  let limit = 0;
  if (limitRaw !== null && limitRaw !== "") {
    if (!/^-?\d+$/.test(limitRaw)) throw badRequest(`invalid limit: ${JSON.stringify(limitRaw)}`);
    limit = Math.max(0, Number(limitRaw));
  }
  const rvRaw = q.get("resourceVersion");
  const resourceVersion = rvRaw === null || rvRaw === "" ? undefined : parseRv(rvRaw, "resourceVersion");
  const matchRaw = q.get("resourceVersionMatch");
  let resourceVersionMatch: ListOptions["resourceVersionMatch"];
  if (matchRaw !== null && matchRaw !== "") {
    if (matchRaw !== "NotOlderThan" && matchRaw !== "Exact") {
      throw invalid("ListOptions", "meta.k8s.io", "", [{ type: "NotSupported", field: "resourceVersionMatch", value: matchRaw, supported: ["Exact", "NotOlderThan", ""] }]);
    }
    if (resourceVersion === undefined && !(watch && q.get("sendInitialEvents") !== null)) {
      throw invalid("ListOptions", "meta.k8s.io", "", [{ type: "Forbidden", field: "resourceVersionMatch", detail: "resourceVersionMatch is forbidden unless resourceVersion is provided" }]);
    }
    if (matchRaw === "Exact" && resourceVersion === 0) {
      throw invalid("ListOptions", "meta.k8s.io", "", [{ type: "Forbidden", field: "resourceVersionMatch", detail: 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"' }]);
    }
    resourceVersionMatch = matchRaw;
  }
  const continueRaw = q.get("continue");
  const continueToken = continueRaw ? decodeContinue(continueRaw) : undefined;
  if (continueToken && resourceVersion !== undefined && resourceVersion !== 0) {
    throw invalid("ListOptions", "meta.k8s.io", "", [{ type: "Forbidden", field: "resourceVersion", detail: "specifying resource version is not allowed when using continue" }]);
  }
  const timeoutRaw = q.get("timeoutSeconds");
  let timeoutSeconds: number | undefined;
  if (timeoutRaw !== null && timeoutRaw !== "") {
    if (!/^\d+$/.test(timeoutRaw)) throw badRequest(`invalid timeoutSeconds: ${JSON.stringify(timeoutRaw)}`);
    timeoutSeconds = Number(timeoutRaw);
  }
  const sendInitialEvents = boolParam(q, "sendInitialEvents");
  if (watch && sendInitialEvents !== undefined && resourceVersionMatch !== "NotOlderThan") {
    throw invalid("ListOptions", "meta.k8s.io", "", [{ type: "Forbidden", field: "resourceVersionMatch", detail: "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan" }]);
  }
  return {
    labelSelector,
    fieldSelector,
    filtered: labelSelector.requirements.length > 0 || fieldSelector.requirements.length > 0,
    limit,
    continueToken,
    resourceVersion,
    resourceVersionMatch,
    timeoutSeconds,
    allowWatchBookmarks: boolParam(q, "allowWatchBookmarks") ?? false,
    sendInitialEvents,
  };
}

/** Whether an object passes the namespace of the URL and both selectors. */
export function objectMatches(def: ResourceDef, opts: Pick<ListOptions, "labelSelector" | "fieldSelector">, namespace: string | undefined, obj: KubeObject): boolean {
  const meta = metaOf(obj);
  if (namespace !== undefined && meta.namespace !== namespace) return false;
  if (!opts.labelSelector.matches(meta.labels)) return false;
  return opts.fieldSelector.matches((field) => {
    if (field === "metadata.name") return meta.name;
    if (field === "metadata.namespace") return meta.namespace ?? "";
    const fn = def.fieldLabels[field];
    return fn ? fn(obj) : fieldString(obj, field);
  });
}
