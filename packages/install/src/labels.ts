import { INSTALL_VERSION } from "./install-options";

export type Component = "mic" | "nmi";

/** Recommended labels (app.kubernetes.io/*) on every object the installer renders. */
export function commonLabels(component?: Component): Record<string, string> {
  return {
    "app.kubernetes.io/part-of": "podidentity",
    "app.kubernetes.io/managed-by": "podidentity-install",
    "app.kubernetes.io/version": INSTALL_VERSION,
    ...(component !== undefined && { "app.kubernetes.io/component": component }),
  };
}

/**
 * The selector labels of MIC's and NMI's pods. `app.kubernetes.io/name` is unique to each workload, so an
 * AzurePodIdentityException on it (any single label match counts) covers MIC's pods and nothing else.
 */
export function selectorLabels(component: Component): Record<string, string> {
  return { "app.kubernetes.io/name": `podidentity-${component}` };
}

export function podLabels(component: Component): Record<string, string> {
  return { ...commonLabels(component), ...selectorLabels(component) };
}
