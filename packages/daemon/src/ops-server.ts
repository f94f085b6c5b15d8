import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface OpsAnswer {
  status: number;
  /** Default `text/plain; charset=utf-8`. */
  contentType?: string;
  body: string;
}

export type OpsRoute = (req: IncomingMessage) => Promise<OpsAnswer> | OpsAnswer;

export interface OpsServerOptions {
  /** Headers on every answer, e.g. the daemon's version header. */
  headers?: Record<string, string>;
  /** Whole-request bound (default 10 s): a client that trickles its request is cut off. */
  requestTimeoutMs?: number;
  /** Bound on receiving the request head (default 5 s). */
  headersTimeoutMs?: number;
}

/**
 * The daemons' listener for operations endpoints — a probe port (`/healthz`, `/readyz`) or a metrics port
 * (`/metrics`) — serving exactly the routes it is given (404 for anything else, 500 with the route's message when a
 * route throws), with request and header timeouts so an idle or slow client cannot hold a connection open.
 */
export class OpsServer {
  readonly #routes: Readonly<Record<string, OpsRoute>>;
  readonly #headers: Readonly<Record<string, string>>;
  readonly #server: Server;

  constructor(routes: Record<string, OpsRoute>, options: OpsServerOptions = {}) {
    this.#routes = routes;
    this.#headers = options.headers ?? {};
    const headersTimeout = options.headersTimeoutMs ?? 5_000;
    this.#server = createServer(
      // Node enforces both timeouts on its connection-checking sweep: sweep at least as often as the shorter bound.
      { requestTimeout: options.requestTimeoutMs ?? 10_000, headersTimeout, connectionsCheckingInterval: Math.min(1_000, headersTimeout) },
      (req, res) => void this.#handle(req, res),
    );
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

  /** The port listened on (the real one when 0 was asked for). */
  get port(): number {
    return (this.#server.address() as AddressInfo).port;
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
    const route = Object.hasOwn(this.#routes, path) ? this.#routes[path] : undefined;
    let answer: OpsAnswer;
    try {
      answer = route === undefined ? { status: 404, body: "not found\n" } : await route(req);
    } catch (error) {
      answer = { status: 500, body: `${(error as Error)?.message ?? String(error)}\n` };
    }
    res.writeHead(answer.status, { ...this.#headers, "content-type": answer.contentType ?? "text/plain; charset=utf-8", "content-length": Buffer.byteLength(answer.body) });
    res.end(answer.body);
  }
}
