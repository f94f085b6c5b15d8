/**
 * Probes whose observations differ between the emulator and the real kube-apiserver (1.20.2), with the reason. The
 * conformance suite fails when one of these stops differing (remove it) or when another probe starts to (fix the
 * emulator, or add it here and to packages/testbed/README.md, "Known differences"). `real` / `emulator` pin the
 * observed answers.
 */
export interface KnownDifference {
  reason: string;
  real?: unknown;
  emulator?: unknown;
}

const CREATOR_LABELS = { "f:labels": { ".": {}, "f:app": {} } };
const ssaEntry = (manager: string, operation: string, fieldsV1: unknown) => ({ manager, operation, apiVersion: "v1", fieldsType: "FieldsV1", fieldsV1 });

export const KNOWN_DIFFERENCES: Record<string, KnownDifference> = {
  "server-side apply: removal": {
    reason:
      "when the applier stops sending b and c (after a forced apply took a from the map's creator), 1.20 keeps c and hands a, b and c to the creator, which owns the map as a whole; the emulator removes c, which no manager but the applier owned (the rule the server-side apply documentation states)",
    real: {
      shrunk: {
        data: { a: "9", b: "2", c: "3" },
        entries: [ssaEntry("applier", "Apply", { "f:data": { "f:a": {} } }), ssaEntry("creator", "Update", { "f:data": { ".": {}, "f:a": {}, "f:b": {}, "f:c": {} }, "f:metadata": CREATOR_LABELS }), ssaEntry("editor", "Update", { "f:data": { "f:b": {} } })],
      },
    },
    emulator: {
      shrunk: {
        data: { a: "9", b: "2" },
        entries: [ssaEntry("applier", "Apply", { "f:data": { "f:a": {} } }), ssaEntry("creator", "Update", { "f:data": {}, "f:metadata": CREATOR_LABELS }), ssaEntry("editor", "Update", { "f:data": { "f:b": {} } })],
      },
    },
  },
  "custom resource: invalid field": {
    reason:
      "version: the emulator reports a type error as one FieldValueTypeInvalid cause, as current Kubernetes does; 1.20 reports FieldValueInvalid and still checks the enum (FieldValueNotSupported)",
  },
  "custom resource: fieldValidation=Strict": {
    reason: "version: fieldValidation arrived in Kubernetes 1.25; 1.20 ignores the parameter and prunes, the emulator (reporting v1.31 by default) refuses with 400",
    real: { status: 201, kind: "AzureIdentity" },
    emulator: { status: 400, reason: "BadRequest", code: 400 },
  },
  "no token": {
    reason:
      "the emulator has no authorizer, so with `tokens` set it refuses requests without a token outright (401, as kube-apiserver with --anonymous-auth=false); kube-apiserver authenticates them as system:anonymous and RBAC refuses (403)",
    real: { api: { status: 403, reason: "Forbidden", code: 403, details: { kind: "namespaces" } }, version: 200 },
    emulator: { api: { status: 401, reason: "Unauthorized", code: 401 }, version: 200 },
  },
  "RBAC: an account without rules": {
    reason: "the emulator does not evaluate RBAC: any valid token may do anything. Least privilege is proven on the real server (packages/install/test/real-kube.test.ts, packages/nmi/test/real-kube.test.ts)",
    real: { status: 403, reason: "Forbidden", code: 403, details: { kind: "pods" } },
    emulator: { status: 200, kind: "PodList" },
  },
};
