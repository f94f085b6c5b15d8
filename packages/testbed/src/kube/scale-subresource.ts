/**
 * The `scale` subresource of Deployments (autoscaling/v1 Scale over spec.replicas), which `kubectl scale` and
 * autoscalers use: GET reads it, PUT and PATCH change only spec.replicas of the main object.
 */
import type { WriteOptions, WriteResult } from "./resource-operations";
import type { ResourceOperations } from "./resource-operations";
import type { ResourceDef } from "./resources";
import { metaOf } from "./resources";
import { applyPatch } from "./patch";
import { badRequest, conflict, invalid } from "./status-errors";

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The Scale of a workload: its replicas and the label selector as a string (`app=web`), as kube-apiserver builds it. */
export function toScale(obj: Json): Json {
  const meta = metaOf(obj);
  const spec = isObject(obj["spec"]) ? obj["spec"] : {};
  const status = isObject(obj["status"]) ? obj["status"] : {};
  const selector = isObject(spec["selector"]) ? spec["selector"] : {};
  const matchLabels = isObject(selector["matchLabels"]) ? selector["matchLabels"] : {};
  const selectorText = Object.keys(matchLabels)
    .sort()
    .map((k) => `${k}=${String(matchLabels[k])}`)
    .join(",");
  return {
    kind: "Scale",
    apiVersion: "autoscaling/v1",
    metadata: { name: meta.name, namespace: meta.namespace, uid: meta.uid, resourceVersion: meta.resourceVersion, creationTimestamp: meta.creationTimestamp },
    spec: { replicas: typeof spec["replicas"] === "number" ? spec["replicas"] : 1 },
    status: { replicas: typeof status["replicas"] === "number" ? status["replicas"] : 0, selector: selectorText },
  };
}

export function getScale(ops: ResourceOperations, def: ResourceDef, namespace: string | undefined, name: string): Json {
  return toScale(ops.get(def, namespace, name));
}

/**
 * PUT (`contentType` undefined) or PATCH of the scale: the resulting Scale's spec.replicas goes to the main object.
 * A resourceVersion in the Scale is a precondition, as for any update.
 */
export function writeScale(ops: ResourceOperations, def: ResourceDef, namespace: string | undefined, name: string, contentType: string | undefined, body: unknown, opts: WriteOptions): WriteResult {
  const current = getScale(ops, def, namespace, name);
  const next = contentType === undefined ? body : applyPatch(current, contentType, body, true);
  if (!isObject(next)) throw badRequest('Scale in version "v1" cannot be handled as a Scale: the body must be a JSON object');
  const rv = isObject(next["metadata"]) ? next["metadata"]["resourceVersion"] : undefined;
  if (typeof rv === "string" && rv !== "" && rv !== (current["metadata"] as Json)["resourceVersion"]) {
    throw conflict({ group: def.group, resource: def.plural }, name);
  }
  const replicas = isObject(next["spec"]) ? next["spec"]["replicas"] : undefined;
  if (replicas !== undefined && (typeof replicas !== "number" || !Number.isInteger(replicas))) {
    throw badRequest(`Scale in version "v1" cannot be handled as a Scale: json: cannot unmarshal ${typeof replicas} into Go struct field ScaleSpec.spec.replicas of type int32`);
  }
  const value = replicas ?? 0;
  if (value < 0) throw invalid("Scale", "autoscaling", name, [{ type: "Invalid", field: "spec.replicas", value, detail: "must be greater than or equal to 0" }]);
  const r = ops.patch(def, namespace, name, undefined, "application/merge-patch+json", { spec: { replicas: value } }, opts);
  return { ...r, object: toScale(r.object) };
}
