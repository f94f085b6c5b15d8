import type { IProbe } from "kubernetes-models/v1/Probe";

/**
 * MIC's and NMI's probes, both served on their `--http-probe-port` (named `http-probe` in the container):
 * `/healthz` for liveness, `/readyz` for readiness (docs/contract.md).
 */
export function httpProbes(): { livenessProbe: IProbe; readinessProbe: IProbe } {
  return {
    livenessProbe: {
      httpGet: { path: "/healthz", port: "http-probe" },
      initialDelaySeconds: 10,
      periodSeconds: 10,
      timeoutSeconds: 3,
      failureThreshold: 3,
    },
    readinessProbe: {
      httpGet: { path: "/readyz", port: "http-probe" },
      periodSeconds: 5,
      timeoutSeconds: 3,
      failureThreshold: 3,
    },
  };
}
