import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
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

async function listen(server: Server, port: number, host: string): Promise<RunningHttpServer> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const actual = (server.address() as AddressInfo).port;
  return {
    port: actual,
    url: `http://${host.includes(":") ? `[${host}]` : host}:${actual}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * `/healthz` (liveness: 200 while the loops run; the body says `Active` on the leader and `Not Active` on a
 * standby, as v1.8's probe did) and `/readyz` (200 once the informers synced, 503 before, or while
 * `notReadyReason` names a problem, with that reason as the body).
 */
export function startProbeServer(state: ProbeState, port: number, host = "0.0.0.0"): Promise<RunningHttpServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/healthz") {
      const ok = state.live();
      res.writeHead(ok ? 200 : 500, { "content-type": "text/plain" }).end(ok ? (state.isLeader() ? "Active" : "Not Active") : "loops stopped");
      return;
    }
    if (path === "/readyz") {
      const problem = state.notReadyReason?.();
      const ok = state.ready() && problem === undefined;
      res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" }).end(ok ? "ready" : (problem ?? "informers not synced"));
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" }).end("not found");
  });
  return listen(server, port, host);
}

/** `/metrics` in Prometheus text format. */
export function startMetricsServer(registry: Registry, port: number, host = "0.0.0.0"): Promise<RunningHttpServer> {
  const server = createServer((req, res) => {
    if ((req.url ?? "/").split("?")[0] !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      (error: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(String((error as Error)?.message ?? error)),
    );
  });
  return listen(server, port, host);
}
