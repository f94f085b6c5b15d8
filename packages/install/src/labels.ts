import type { IPodTemplateSpec } from "kubernetes-models/v1/PodTemplateSpec";
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";
import { INSTALL_VERSION, type InstallOptions, type WorkloadSettings } from "./install-options";

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

/** A pod template's metadata: the workload's labels plus the user's extra labels and annotations (selector labels win). */
export function podMetadata(component: Component, w: Pick<WorkloadSettings, "podLabels" | "podAnnotations">): NonNullable<IPodTemplateSpec["metadata"]> {
  return {
    labels: { ...w.podLabels, ...podLabels(component) },
    ...(Object.keys(w.podAnnotations).length > 0 && { annotations: { ...w.podAnnotations } }),
  };
}

/** The scheduling fields of a pod spec; empty settings are left out, so a default rendering stays minimal. */
export function podScheduling(
  o: Pick<InstallOptions, "imagePullSecrets">,
  w: Pick<WorkloadSettings, "priorityClassName" | "nodeSelector" | "tolerations" | "affinity">,
): Pick<IPodSpec, "priorityClassName" | "nodeSelector" | "tolerations" | "affinity" | "imagePullSecrets"> {
  return {
    ...(o.imagePullSecrets.length > 0 && { imagePullSecrets: o.imagePullSecrets.map((name) => ({ name })) }),
    ...(w.priorityClassName !== undefined && w.priorityClassName !== "" && { priorityClassName: w.priorityClassName }),
    ...(Object.keys(w.nodeSelector).length > 0 && { nodeSelector: { ...w.nodeSelector } }),
    ...(w.tolerations.length > 0 && { tolerations: [...w.tolerations] }),
    ...(w.affinity !== undefined && Object.keys(w.affinity).length > 0 && { affinity: w.affinity }),
  };
}
