import { OpsServer, type OpsRoute } from "@podidentity/daemon";
import type { Registry } from "prom-client";

export interface ProbeState {
  /** Informers synced (leader or standby: a standby is ready, so it never blocks a node drain). */
  ready(): boolean;
  /** Process loops alive. */
  live(): boolean;
  isLeader(): boolean;
  /** A condition that makes the replica not ready although synced (e.g. its Lease is forbidden); undefined: none. */
  notReadyReason?(): string | undefined;
}

export interface RunningHttpServer {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

async function listen(routes: Record<string, OpsRoute>, port: number, host: string): Promise<RunningHttpServer> {
  const server = new OpsServer(routes);
  await server.listen(port, host);
  return server;
}

/**
 * `/healthz` (liveness: 200 while the loops run; the body says `Active` on the leader and `Not Active` on a
 * standby, as v1.8's probe did) and `/readyz` (200 once the informers synced, 503 before, or while
 * `notReadyReason` names a problem, with that reason as the body).
 */
export function startProbeServer(state: ProbeState, port: number, host = "0.0.0.0"): Promise<RunningHttpServer> {
  return listen(
    {
      "/healthz": () => {
        const ok = state.live();
        return { status: ok ? 200 : 500, body: ok ? (state.isLeader() ? "Active" : "Not Active") : "loops stopped" };
      },
      "/readyz": () => {
        const problem = state.notReadyReason?.();
        const ok = state.ready() && problem === undefined;
        return { status: ok ? 200 : 503, body: ok ? "ready" : (problem ?? "informers not synced") };
      },
    },
    port,
    host,
  );
}

/** `/metrics` in Prometheus text format. */
export function startMetricsServer(registry: Registry, port: number, host = "0.0.0.0"): Promise<RunningHttpServer> {
  return listen({ "/metrics": async () => ({ status: 200, contentType: registry.contentType, body: await registry.metrics() }) }, port, host);
}
