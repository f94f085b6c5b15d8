/**
 * What normalisation found wrong or old-fashioned in an object. MIC and NMI turn these into Kubernetes Warning
 * events and status messages instead of crashing or silently ignoring the object (v1.8 did the latter).
 *
 * - `error`: the object cannot be used as it is (MIC does not assign it, NMI does not serve it);
 * - `warning`: a value was ignored or coerced; the object still works;
 * - `info`: a legacy spelling was read; worth a hint (`kubectl get` columns stay empty for it), nothing more.
 */
export type ProblemSeverity = "error" | "warning" | "info";

export type ProblemCode =
  | "legacy-key"
  | "conflicting-keys"
  | "invalid-field"
  | "coerced-value"
  | "unknown-identity-type"
  | "missing-resource-id"
  | "invalid-resource-id"
  | "malformed-resource-id"
  | "missing-client-id"
  | "missing-tenant-id"
  | "missing-client-password"
  | "missing-azure-identity"
  | "missing-selector"
  | "missing-field"
  | "unknown-status"
  | "empty-pod-labels";

export interface NormalizationProblem {
  readonly code: ProblemCode;
  readonly severity: ProblemSeverity;
  /** Dotted path of the field in the canonical spelling, e.g. `spec.resourceID`. */
  readonly path: string;
  /** Says what is wrong and what to change; never contains a secret (these objects hold none). */
  readonly message: string;
}

/** A normalised object, what was found on the way, and whether it is usable (no `error` problem). */
export interface Normalized<T> {
  readonly object: T;
  readonly problems: readonly NormalizationProblem[];
  readonly ok: boolean;
}

export function hasErrors(problems: readonly NormalizationProblem[]): boolean {
  return problems.some((p) => p.severity === "error");
}

/** One line per problem, for logs and event messages. */
export function formatProblems(problems: readonly NormalizationProblem[]): string {
  return problems.map((p) => `${p.path}: ${p.message}`).join("; ");
}

export function normalized<T>(object: T, problems: readonly NormalizationProblem[]): Normalized<T> {
  return { object, problems, ok: !hasErrors(problems) };
}
