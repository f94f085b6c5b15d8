import { OpsServer as DaemonOpsServer, type OpsRoute } from "@podidentity/daemon";
import { NMI_VERSION, NMI_VERSION_HEADER } from "./version";

export type { OpsRoute };

/**
 * NMI's listeners for operations endpoints: the probe port (`/healthz` liveness, `/readyz` readiness) and the
 * metrics port (`/metrics`), each answer carrying NMI's version header. Nothing else is served there (v1.8 exposed
 * pprof on its probe port by accident).
 */
export class OpsServer extends DaemonOpsServer {
  constructor(routes: Record<string, OpsRoute>) {
    super(routes, { headers: { [NMI_VERSION_HEADER]: NMI_VERSION } });
  }
}

export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, boolean>;
}

/** `/readyz` body: one line per check, as kube-apiserver's `?verbose` readyz does. */
export function readinessBody(report: ReadinessReport): string {
  const lines = Object.entries(report.checks).map(([name, ok]) => `[${ok ? "+" : "-"}]${name} ${ok ? "ok" : "failed"}`);
  return `${lines.join("\n")}\n${report.ready ? "readyz check passed" : "readyz check failed"}\n`;
}
