import { validateAzureIdentity, type AzureIdentity } from "./azure-identity";
import type { AzureIdentityBinding } from "./azure-identity-binding";
import { assignedIdentityName, assignedIdentityNamespace } from "./assigned-identity-name";
import { podSelector } from "./binding-selects-pod";
import { isIdentityNamespaced } from "./is-identity-namespaced";
import { formatProblems, type NormalizationProblem } from "./normalization-problem";
import { nameOf, namespaceOf, type PodLike } from "./object-meta";

export interface MatchOptions {
  /** Namespaced matching for every identity (docs/contract.md: default true in NMI and MIC; v1.8 defaulted to false). */
  forceNamespaced: boolean;
}

/** One identity a pod may use, through one binding, and where its AzureAssignedIdentity lives. */
export interface PodIdentityMatch {
  readonly binding: AzureIdentityBinding;
  readonly identity: AzureIdentity;
  readonly namespaced: boolean;
  readonly assignedIdentityName: string;
  readonly assignedIdentityNamespace: string;
}

export type SkipReason =
  | "binding-invalid"
  | "identity-not-found"
  | "identity-invalid"
  | "namespace-mismatch"
  | "duplicate-assigned-name";

/** A binding that selects the pod but gives it nothing, and why — for Warning events and NMI's 403 message. */
export interface SkippedBinding {
  readonly binding: AzureIdentityBinding;
  readonly reason: SkipReason;
  readonly message: string;
  readonly identity?: AzureIdentity;
  readonly problems?: readonly NormalizationProblem[];
}

export interface PodIdentityMatches {
  readonly matches: readonly PodIdentityMatch[];
  readonly skipped: readonly SkippedBinding[];
}

const key = (namespace: string, name: string): string => `${namespace}/${name}`;

/** v1.8 sorted bindings by namespace, then name, bytewise; this order decides which duplicate wins. */
function byNamespaceThenName(a: AzureIdentityBinding, b: AzureIdentityBinding): number {
  const ka = [namespaceOf(a), nameOf(a)] as const;
  const kb = [namespaceOf(b), nameOf(b)] as const;
  if (ka[0] !== kb[0]) return ka[0] < kb[0] ? -1 : 1;
  if (ka[1] !== kb[1]) return ka[1] < kb[1] ? -1 : 1;
  return 0;
}

/**
 * Bindings indexed by selector and identities by namespace/name, answering "which identities may this pod
 * use?" by v1.8's rules — the one implementation MIC (desired assignments) and NMI (managed mode, and telling
 * "no binding" from "pending") share, so they cannot disagree:
 *
 * 1. bindings whose selector equals the pod's `aadpodidbinding` label, in any namespace, sorted by
 *    (namespace, name);
 * 2. the identity is `spec.azureIdentity` looked up in the **binding's** namespace; missing → skipped;
 * 3. an identity that fails validation (e.g. a type-0 resourceID v1.8's pattern rejects) → skipped;
 * 4. when namespaced (globally or by annotation), identity, binding and pod namespaces must all be equal;
 * 5. two matches yielding the same AzureAssignedIdentity name: the first wins.
 *
 * Pass normalised objects. Whether the pod is scheduled or finished is the caller's business.
 * Immutable: rebuild it when bindings or identities change (building is O(n log n) for n bindings).
 */
export class IdentityCatalog {
  private readonly bindingsBySelector = new Map<string, AzureIdentityBinding[]>();
  private readonly identitiesByKey = new Map<string, AzureIdentity>();
  private readonly identityErrors = new Map<AzureIdentity, readonly NormalizationProblem[]>();

  constructor(bindings: Iterable<AzureIdentityBinding>, identities: Iterable<AzureIdentity>) {
    for (const binding of bindings) {
      const selector = binding.spec.selector;
      if (selector === undefined || selector === "") continue;
      const list = this.bindingsBySelector.get(selector);
      if (list === undefined) this.bindingsBySelector.set(selector, [binding]);
      else list.push(binding);
    }
    for (const list of this.bindingsBySelector.values()) list.sort(byNamespaceThenName);
    for (const identity of identities) {
      this.identitiesByKey.set(key(namespaceOf(identity), nameOf(identity)), identity);
      // Validated once here rather than per pod: MIC evaluates thousands of pods against one catalog.
      const errors = validateAzureIdentity(identity).filter((p) => p.severity === "error");
      if (errors.length > 0) this.identityErrors.set(identity, errors);
    }
  }

  /** Bindings (in any namespace) whose selector equals the pod's label, in v1.8's order. */
  bindingsSelecting(pod: PodLike): readonly AzureIdentityBinding[] {
    const selector = podSelector(pod);
    return selector === undefined ? [] : (this.bindingsBySelector.get(selector) ?? []);
  }

  identity(namespace: string, name: string): AzureIdentity | undefined {
    return this.identitiesByKey.get(key(namespace, name));
  }

  /** The identities the pod may use and the selecting bindings that gave it nothing. */
  match(pod: PodLike, options: MatchOptions): PodIdentityMatches {
    const matches: PodIdentityMatch[] = [];
    const skipped: SkippedBinding[] = [];
    const seen = new Set<string>();
    const podName = nameOf(pod);
    const podNamespace = namespaceOf(pod);
    for (const binding of this.bindingsSelecting(pod)) {
      const bindingNamespace = namespaceOf(binding);
      const where = `AzureIdentityBinding ${key(bindingNamespace, nameOf(binding))}`;
      const identityName = binding.spec.azureIdentity;
      if (identityName === undefined || identityName === "") {
        skipped.push({ binding, reason: "binding-invalid", message: `${where} names no azureIdentity` });
        continue;
      }
      const identity = this.identity(bindingNamespace, identityName);
      if (identity === undefined) {
        skipped.push({
          binding,
          reason: "identity-not-found",
          message: `${where} names AzureIdentity ${identityName}, which does not exist in namespace ${bindingNamespace}`,
        });
        continue;
      }
      const errors = this.identityErrors.get(identity);
      if (errors !== undefined) {
        skipped.push({
          binding,
          identity,
          reason: "identity-invalid",
          problems: errors,
          message: `AzureIdentity ${key(bindingNamespace, identityName)} cannot be used: ${formatProblems(errors)}`,
        });
        continue;
      }
      const namespaced = isIdentityNamespaced(identity, options.forceNamespaced);
      if (namespaced && bindingNamespace !== podNamespace) {
        skipped.push({
          binding,
          identity,
          reason: "namespace-mismatch",
          message:
            `${where} selects pod ${key(podNamespace, podName)}, but AzureIdentity ${identityName} is namespaced: ` +
            `only pods in ${bindingNamespace} may use it`,
        });
        continue;
      }
      const name = assignedIdentityName(podName, podNamespace, identityName);
      const namespace = assignedIdentityNamespace(identity, namespaced);
      if (seen.has(key(namespace, name))) {
        skipped.push({
          binding,
          identity,
          reason: "duplicate-assigned-name",
          message: `${where} yields AzureAssignedIdentity ${key(namespace, name)}, already produced by an earlier binding`,
        });
        continue;
      }
      seen.add(key(namespace, name));
      matches.push({ binding, identity, namespaced, assignedIdentityName: name, assignedIdentityNamespace: namespace });
    }
    return { matches, skipped };
  }
}

/** One-shot form of IdentityCatalog.match, for callers that do not keep a catalog. */
export function matchPodIdentities(
  pod: PodLike,
  bindings: Iterable<AzureIdentityBinding>,
  identities: Iterable<AzureIdentity>,
  options: MatchOptions,
): PodIdentityMatches {
  return new IdentityCatalog(bindings, identities).match(pod, options);
}
