import { readAzureIdentity, validateAzureIdentity, type AzureIdentity } from "./azure-identity";
import {
  readAzureIdentityBinding,
  validateAzureIdentityBinding,
  type AzureIdentityBinding,
} from "./azure-identity-binding";
import { FieldReader, isPlainObject } from "./field-reader";
import {
  AZURE_ASSIGNED_IDENTITY_SPEC_SPELLINGS,
  AZURE_ASSIGNED_IDENTITY_STATUS_SPELLINGS,
  STATUS_ROOT_SPELLINGS,
} from "./legacy-keys";
import { API_GROUP_VERSION } from "./names";
import { normalized, type Normalized, type NormalizationProblem } from "./normalization-problem";
import type { KubeList, ObjectMeta } from "./object-meta";
import { AZURE_ASSIGNED_IDENTITY_NAMES } from "./resource-kinds";

/** `status.status` values, v1.8's lifecycle: Created → Assigned; on removal Assigned → Unassigned → deleted. */
export const ASSIGNED_IDENTITY_STATE = {
  Created: "Created",
  Assigned: "Assigned",
  Unassigned: "Unassigned",
} as const;
export type AssignedIdentityState = (typeof ASSIGNED_IDENTITY_STATE)[keyof typeof ASSIGNED_IDENTITY_STATE];

const STATES: readonly AssignedIdentityState[] = Object.values(ASSIGNED_IDENTITY_STATE);

export interface AzureAssignedIdentitySpec {
  /** The whole AzureIdentity as it was when assigned (an embedded resource: apiVersion and kind must be set). */
  azureIdentityRef?: AzureIdentity;
  /** The whole AzureIdentityBinding that matched (embedded resource, as above). */
  azureBindingRef?: AzureIdentityBinding;
  pod?: string;
  podNamespace?: string;
  nodename?: string;
  replicas?: number;
}

/**
 * Why MIC cannot assign the identity: ARM's error code and message for a failure retrying alone will not fix
 * (the identity does not exist, MIC may not assign it). Written beside `status.status` (which stays `Created`, so
 * v1.8 readers are unaffected), kept while MIC retries with backoff, removed once the assignment succeeds.
 */
export interface AssignmentError {
  /** ARM's error code, e.g. `FailedIdentityOperation`, `LinkedAuthorizationFailed`. */
  code: string;
  /** ARM's message (at most ASSIGNMENT_ERROR_MAX_MESSAGE_LENGTH characters). */
  message: string;
  /** RFC 3339 time MIC first saw this error for the assignment. */
  lastTransitionTime?: string;
}

/** MIC cuts ARM's message to this many characters before writing `status.error`. */
export const ASSIGNMENT_ERROR_MAX_MESSAGE_LENGTH = 1024;

export interface AzureAssignedIdentityStatus {
  /** An AssignedIdentityState once normalised; an unrecognised value is kept as written and reported. */
  status?: string;
  availableReplicas?: number;
  /** Set by MIC while ARM refuses the assignment for a reason retrying alone will not fix. */
  error?: AssignmentError;
}

export interface AzureAssignedIdentity {
  apiVersion: typeof API_GROUP_VERSION;
  kind: typeof AZURE_ASSIGNED_IDENTITY_NAMES.kind;
  metadata: ObjectMeta;
  spec: AzureAssignedIdentitySpec;
  status?: AzureAssignedIdentityStatus;
}

export type AzureAssignedIdentityList = KubeList<AzureAssignedIdentity>;

/**
 * Reads an AzureAssignedIdentity, including those stored by pre-1.6 MIC (lowercase spec keys such as
 * `azureidentityref` and `podnamespace`, status under a top-level `Status`). The embedded identity and binding
 * are read by their own kinds' readers, so legacy keys inside them are understood too.
 */
export function readAzureAssignedIdentity(input: unknown, problems: NormalizationProblem[]): AzureAssignedIdentity {
  const root = FieldReader.of(input, "", STATUS_ROOT_SPELLINGS, problems);
  const spec = root.child("spec", AZURE_ASSIGNED_IDENTITY_SPEC_SPELLINGS);
  const out: AzureAssignedIdentitySpec = {};
  const identityRef = spec.raw("azureIdentityRef");
  if (identityRef !== undefined) out.azureIdentityRef = readAzureIdentity(identityRef, problems, "spec.azureIdentityRef");
  const bindingRef = spec.raw("azureBindingRef");
  if (bindingRef !== undefined) {
    out.azureBindingRef = readAzureIdentityBinding(bindingRef, problems, "spec.azureBindingRef");
  }
  const pod = spec.string("pod");
  if (pod !== undefined) out.pod = pod;
  const podNamespace = spec.string("podNamespace");
  if (podNamespace !== undefined) out.podNamespace = podNamespace;
  const nodename = spec.string("nodename");
  if (nodename !== undefined) out.nodename = nodename;
  const replicas = spec.integer("replicas");
  if (replicas !== undefined) out.replicas = replicas;

  const metadata = isPlainObject(input) && isPlainObject(input.metadata) ? { ...(input.metadata as ObjectMeta) } : {};
  const assigned: AzureAssignedIdentity = {
    apiVersion: API_GROUP_VERSION,
    kind: AZURE_ASSIGNED_IDENTITY_NAMES.kind,
    metadata,
    spec: out,
  };
  const statusReader = root.child("status", AZURE_ASSIGNED_IDENTITY_STATUS_SPELLINGS);
  const status: AzureAssignedIdentityStatus = {};
  const state = statusReader.string("status");
  if (state !== undefined) {
    // v1.8 compared exactly; a hand-edited "assigned" is plainly meant as Assigned, so accept it with a warning.
    const canonical = STATES.find((s) => s.toLowerCase() === state.toLowerCase());
    if (canonical !== undefined && canonical !== state) {
      problems.push({
        code: "coerced-value",
        severity: "warning",
        path: "status.status",
        message: `"${state}" read as "${canonical}"`,
      });
    }
    status.status = canonical ?? state;
  }
  const availableReplicas = statusReader.integer("availableReplicas");
  if (availableReplicas !== undefined) status.availableReplicas = availableReplicas;
  const error = statusReader.child("error", {});
  const code = error.string("code");
  if (code !== undefined) {
    const message = error.string("message") ?? "";
    const lastTransitionTime = error.string("lastTransitionTime");
    status.error = { code, message: message.slice(0, ASSIGNMENT_ERROR_MAX_MESSAGE_LENGTH), ...(lastTransitionTime !== undefined && { lastTransitionTime }) };
  }
  if (Object.keys(status).length > 0) assigned.status = status;
  return assigned;
}

/** Missing pod, namespace, node or references, an unusable embedded identity, or an unknown state. */
export function validateAzureAssignedIdentity(assigned: AzureAssignedIdentity): NormalizationProblem[] {
  const problems: NormalizationProblem[] = [];
  const { spec } = assigned;
  const required: [keyof AzureAssignedIdentitySpec, string][] = [
    ["azureIdentityRef", "the embedded AzureIdentity"],
    ["azureBindingRef", "the embedded AzureIdentityBinding"],
    ["pod", "the pod's name"],
    ["podNamespace", "the pod's namespace"],
    ["nodename", "the pod's node"],
  ];
  for (const [field, what] of required) {
    if (spec[field] === undefined) {
      problems.push({ code: "missing-field", severity: "error", path: `spec.${field}`, message: `${field} (${what}) is missing` });
    }
  }
  if (spec.azureIdentityRef !== undefined) {
    problems.push(...validateAzureIdentity(spec.azureIdentityRef, "spec.azureIdentityRef"));
  }
  if (spec.azureBindingRef !== undefined) {
    problems.push(...validateAzureIdentityBinding(spec.azureBindingRef, "spec.azureBindingRef"));
  }
  const state = assigned.status?.status;
  if (state !== undefined && !STATES.includes(state as AssignedIdentityState)) {
    problems.push({
      code: "unknown-status",
      severity: "error",
      path: "status.status",
      message: `"${state}" is not one of ${STATES.join(", ")}`,
    });
  }
  return problems;
}

/** An AzureAssignedIdentity in canonical form with everything found on the way. Never throws. */
export function normalizeAzureAssignedIdentity(input: unknown): Normalized<AzureAssignedIdentity> {
  const problems: NormalizationProblem[] = [];
  const assigned = readAzureAssignedIdentity(input, problems);
  problems.push(...validateAzureAssignedIdentity(assigned));
  return normalized(assigned, problems);
}

/**
 * The lifecycle state NMI and MIC act on. An empty status means the object predates v1.6 (which introduced
 * states) and counts as Assigned, as in v1.8; an unrecognised value is `undefined` — neither usable nor done.
 */
export function assignedIdentityState(assigned: AzureAssignedIdentity): AssignedIdentityState | undefined {
  const state = assigned.status?.status;
  if (state === undefined || state === "") return ASSIGNED_IDENTITY_STATE.Assigned;
  return STATES.find((s) => s === state);
}
