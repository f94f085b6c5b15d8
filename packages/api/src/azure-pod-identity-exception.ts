import { FieldReader, isPlainObject } from "./field-reader";
import {
  AZURE_POD_IDENTITY_EXCEPTION_SPEC_SPELLINGS,
  AZURE_POD_IDENTITY_EXCEPTION_STATUS_SPELLINGS,
  STATUS_ROOT_SPELLINGS,
} from "./legacy-keys";
import { API_GROUP_VERSION } from "./names";
import { normalized, type Normalized, type NormalizationProblem } from "./normalization-problem";
import type { KubeList, ObjectMeta } from "./object-meta";
import { AZURE_POD_IDENTITY_EXCEPTION_NAMES } from "./resource-kinds";

export interface AzurePodIdentityExceptionSpec {
  /** A pod in the exception's namespace with any one of these labels (value compared ignoring case) is exempt. */
  podLabels?: Record<string, string>;
}

export interface AzurePodIdentityExceptionStatus {
  status?: string;
}

export interface AzurePodIdentityException {
  apiVersion: typeof API_GROUP_VERSION;
  kind: typeof AZURE_POD_IDENTITY_EXCEPTION_NAMES.kind;
  metadata: ObjectMeta;
  spec: AzurePodIdentityExceptionSpec;
  status?: AzurePodIdentityExceptionStatus;
}

export type AzurePodIdentityExceptionList = KubeList<AzurePodIdentityException>;

/** Reads an exception written with any spelling of legacy-keys.ts (`PodLabels`, top-level `Status` …). */
export function readAzurePodIdentityException(
  input: unknown,
  problems: NormalizationProblem[],
): AzurePodIdentityException {
  const root = FieldReader.of(input, "", STATUS_ROOT_SPELLINGS, problems);
  const podLabels = root.child("spec", AZURE_POD_IDENTITY_EXCEPTION_SPEC_SPELLINGS).stringMap("podLabels");
  const metadata = isPlainObject(input) && isPlainObject(input.metadata) ? { ...(input.metadata as ObjectMeta) } : {};
  const exception: AzurePodIdentityException = {
    apiVersion: API_GROUP_VERSION,
    kind: AZURE_POD_IDENTITY_EXCEPTION_NAMES.kind,
    metadata,
    spec: podLabels === undefined ? {} : { podLabels },
  };
  const status = root.child("status", AZURE_POD_IDENTITY_EXCEPTION_STATUS_SPELLINGS).string("status");
  if (status !== undefined) exception.status = { status };
  return exception;
}

/** An exception without labels exempts nothing; worth a warning, not an error (it harms nobody). */
export function validateAzurePodIdentityException(exception: AzurePodIdentityException): NormalizationProblem[] {
  const labels = exception.spec.podLabels;
  if (labels !== undefined && Object.keys(labels).length > 0) return [];
  return [
    {
      code: "empty-pod-labels",
      severity: "warning",
      path: "spec.podLabels",
      message: "podLabels is empty, so this exception exempts no pod",
    },
  ];
}

/** An exception in canonical form with everything found on the way. Never throws. */
export function normalizeAzurePodIdentityException(input: unknown): Normalized<AzurePodIdentityException> {
  const problems: NormalizationProblem[] = [];
  const exception = readAzurePodIdentityException(input, problems);
  problems.push(...validateAzurePodIdentityException(exception));
  return normalized(exception, problems);
}
