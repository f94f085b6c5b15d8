/**
 * The create-only reviews kubectl's `auth` commands send: SelfSubjectAccessReview (`kubectl auth can-i`) and
 * SelfSubjectReview (`kubectl auth whoami`). Both are answered from the requesting user (the `tokens` option's
 * user map) and never stored. The emulator does not evaluate RBAC — any authenticated request is allowed — so an
 * access review answers `allowed: true` and says why in `reason`; least privilege is proven against the real
 * kube-apiserver (test/real-kube).
 */
import type { ResourceDef } from "./resources";
import { apiVersionOf } from "./resources";
import { badRequest, invalid } from "./status-errors";

type Json = Record<string, unknown>;

export const NO_RBAC_REASON = "the testbed's API server does not evaluate RBAC: every authenticated request is allowed";

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The groups kube-apiserver's authenticators give a user of this name. */
export function groupsOf(user: string, anonymousUser: string): string[] {
  if (user === anonymousUser) return ["system:unauthenticated"];
  const sa = /^system:serviceaccount:([^:]+):[^:]+$/.exec(user);
  return sa ? ["system:serviceaccounts", `system:serviceaccounts:${sa[1] as string}`, "system:authenticated"] : ["system:authenticated"];
}

/** Answers a review POST: the request's spec with a status, as a 201 would carry it. */
export function answerReview(def: ResourceDef, body: unknown, user: string, anonymousUser: string): Json {
  if (!isObject(body)) throw badRequest(`${def.kind} in version "${def.version}" cannot be handled as a ${def.kind}: the body must be a JSON object`);
  if (body["kind"] !== undefined && body["kind"] !== def.kind) {
    throw badRequest(`${String(body["kind"])} in version "${def.version}" cannot be handled as a ${def.kind}: the kind in the data (${String(body["kind"])}) does not match the expected kind (${def.kind})`);
  }
  const head = { kind: def.kind, apiVersion: apiVersionOf(def), metadata: { creationTimestamp: null } };
  if (def.kind === "SelfSubjectReview") {
    return { ...head, status: { userInfo: { username: user, groups: groupsOf(user, anonymousUser) } } };
  }
  const spec = isObject(body["spec"]) ? body["spec"] : {};
  const hasResource = isObject(spec["resourceAttributes"]);
  const hasNonResource = isObject(spec["nonResourceAttributes"]);
  if (hasResource === hasNonResource) {
    throw invalid(def.kind, def.group, "", [
      { type: "Invalid", field: "spec.resourceAttributes", value: hasResource ? "object" : "null", valueText: hasResource ? undefined : '"null"', detail: "exactly one of nonResourceAttributes or resourceAttributes must be specified" },
    ]);
  }
  return { ...head, spec, status: { allowed: true, reason: NO_RBAC_REASON } };
}
