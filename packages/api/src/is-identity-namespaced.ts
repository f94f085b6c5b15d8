import { BEHAVIOR_ANNOTATION, BEHAVIOR_NAMESPACED } from "./names";
import type { ObjectMeta } from "./object-meta";

/**
 * Whether an identity may only serve pods in its own namespace (through bindings in that namespace too).
 *
 * True when matching is namespaced for the whole cluster (`--force-namespaced`, our default; v1.8 defaulted to
 * false, letting any pod in any namespace claim any identity by setting a label) or when the identity carries
 * `aadpodidentity.k8s.io/Behavior: namespaced`, as in v1.8. v1.8 compared the annotation value exactly; we
 * ignore case and surrounding blanks, since a stricter reading could only widen who gets the identity.
 */
export function isIdentityNamespaced(
  identity: { metadata?: ObjectMeta | undefined },
  forceNamespaced: boolean,
): boolean {
  if (forceNamespaced) return true;
  const behavior = identity.metadata?.annotations?.[BEHAVIOR_ANNOTATION];
  return typeof behavior === "string" && behavior.trim().toLowerCase() === BEHAVIOR_NAMESPACED;
}
