import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { NMI_VERSION, NMI_VERSION_HEADER } from "./version";

export type OpsRoute = (req: IncomingMessage) => Promise<{ status: number; contentType?: string; body: string }> | { status: number; contentType?: string; body: string };

/**
 * A small listener for operations endpoints: the probe port (`/healthz` liveness, `/readyz` readiness) and the
 * metrics port (`/metrics`). Nothing else is served there (v1.8 exposed pprof on its probe port by accident).
 */
export class OpsServer {
  readonly #routes: Record<string, OpsRoute>;
  readonly #server: Server;

  constructor(routes: Record<string, OpsRoute>) {
    this.#routes = routes;
    this.#server = createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => void this.#handle(req, res));
  }

  async listen(port: number, host: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(port, host, () => {
        this.#server.off("error", reject);
        resolve();
      });
    });
  }

  get url(): string {
    const a = this.#server.address() as AddressInfo;
    return `http://${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}`;
  }

  async close(): Promise<void> {
    if (!this.#server.listening) return;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const route = this.#routes[path];
    let answer: { status: number; contentType?: string; body: string };
    try {
      answer = route === undefined ? { status: 404, body: "not found\n" } : await route(req);
    } catch (error) {
      answer = { status: 500, body: `${(error as Error).message}\n` };
    }
    res.writeHead(answer.status, { "content-type": answer.contentType ?? "text/plain; charset=utf-8", [NMI_VERSION_HEADER]: NMI_VERSION });
    res.end(answer.body);
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
