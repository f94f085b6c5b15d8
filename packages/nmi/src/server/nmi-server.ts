import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Logger } from "pino";
import type { NmiConfig } from "../config";
import { NMI_ERROR_CODE, NmiError } from "../errors";
import type { NmiMetrics } from "../metrics";
import { NMI_VERSION, NMI_VERSION_HEADER } from "../version";
import { errorAnswer, sendJson } from "./http-response";
import { parseRequestTarget, type RouteKind } from "./request-route";
import type { TokenHandler } from "./token-handler";
import type { UpstreamProxy } from "./upstream-proxy";

export interface NmiServerOptions {
  config: NmiConfig;
  handler: TokenHandler;
  proxy: UpstreamProxy;
  metrics: NmiMetrics;
  logger: Logger;
}

/**
 * The IMDS-compatible listener (CONTRACT.md's routes): token route, malformed token path → 400, `/host/token`,
 * `/metadata/instance` blocked or proxied, everything else proxied to the upstream IMDS only. Bounded header
 * size and request time; a client that goes away aborts its wait and its upstream call.
 */
export class NmiServer {
  readonly #o: NmiServerOptions;
  readonly #server: Server;
  readonly #debug: boolean;

  constructor(options: NmiServerOptions) {
    this.#o = options;
    this.#debug = options.logger.isLevelEnabled("debug");
    const { config } = options;
    this.#server = createServer(
      {
        requestTimeout: config.requestTimeoutMs,
        headersTimeout: config.headersTimeoutMs,
        maxHeaderSize: config.maxHeaderBytes,
        // Node enforces the two timeouts above only when it checks connections (default every 30 s).
        connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.floor(config.headersTimeoutMs / 2))),
        keepAliveTimeout: 5_000,
      },
      (req, res) => void this.#handle(req, res),
    );
    // Malformed HTTP, oversized headers, timeouts: still an IMDS-shaped answer where the socket allows one.
    this.#server.on("clientError", (error: NodeJS.ErrnoException, socket: Socket) => {
      if (!socket.writable) return socket.destroy();
      const status = error.code === "HPE_HEADER_OVERFLOW" ? 431 : error.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
      const body = JSON.stringify({ error: NMI_ERROR_CODE.InvalidRequest, error_description: `malformed or incomplete HTTP request (${error.code ?? "error"})` });
      this.#o.metrics.observeRequest("invalid", status, NMI_ERROR_CODE.InvalidRequest, 0);
      socket.end(
        `HTTP/1.1 ${status} Bad Request\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\n${NMI_VERSION_HEADER}: ${NMI_VERSION}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(this.#o.config.port, this.#o.config.listenAddress, () => {
        this.#server.off("error", reject);
        resolve();
      });
    });
  }

  get address(): AddressInfo {
    return this.#server.address() as AddressInfo;
  }

  get url(): string {
    const a = this.address;
    return `http://${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}`;
  }

  /** Stops accepting; lets requests in flight finish for up to `graceMs`, then cuts the rest. */
  async close(graceMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    const timer = setTimeout(() => this.#server.closeAllConnections(), graceMs);
    await closed;
    clearTimeout(timer);
  }

  /**
   * Dispatches a request. Kept free of async/await so that a token answered from the caches costs no promise and
   * no microtask; only slower paths return a promise.
   */
  #handle(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    const gone = new ClientGone(res);
    let route: RouteKind | "invalid" = "invalid";
    let pending: Promise<unknown> | undefined;
    try {
      const target = parseRequestTarget(req.url ?? "/");
      route = target.route;
      switch (target.route) {
        case "token":
          pending = this.#o.handler.handleToken(req, res, target, gone);
          break;
        case "malformed-token":
          throw new NmiError(400, NMI_ERROR_CODE.InvalidRequest, "Invalid request: malformed token path; use /metadata/identity/oauth2/token");
        case "host-token":
          pending = this.#o.handler.handleHostToken(req, res, target, gone);
          break;
        case "instance":
          if (this.#o.config.blockInstanceMetadata) {
            throw new NmiError(403, NMI_ERROR_CODE.Forbidden, "Request blocked by AAD Pod Identity NMI (--block-instance-metadata)");
          }
          pending = this.#forward(req, res, target.path, target.query, gone);
          break;
        case "proxy":
          pending = this.#forward(req, res, target.path, target.query, gone);
          break;
      }
    } catch (error) {
      this.#finish(req, res, route, started, error);
      return;
    }
    if (pending === undefined) this.#finish(req, res, route, started, undefined);
    else pending.then(() => this.#finish(req, res, route, started, undefined), (error: unknown) => this.#finish(req, res, route, started, error));
  }

  /** Answers a failure (the one place errors become HTTP answers), then metrics and the debug log line. */
  #finish(req: IncomingMessage, res: ServerResponse, route: RouteKind | "invalid", started: number, error: unknown): void {
    let status = res.statusCode;
    let code = "ok";
    if (error !== undefined) {
      const answer = errorAnswer(error);
      status = answer.status;
      code = answer.code;
      if (answer.status >= 500 && !(error instanceof NmiError)) {
        this.#o.logger.error({ route, err: error instanceof Error ? error.message : String(error) }, "unexpected failure answering a request");
      }
      sendJson(res, answer.status, answer.body, answer.headers);
    }
    this.#o.metrics.observeRequest(route, status, code, (performance.now() - started) / 1000);
    if (this.#debug) this.#o.logger.debug({ route, status, code, remote: req.socket.remoteAddress, ms: Math.round(performance.now() - started) }, "request answered");
  }

  async #forward(req: IncomingMessage, res: ServerResponse, path: string, query: string, gone: ClientGone): Promise<void> {
    if (this.#o.config.metadataHeaderRequired && String(req.headers["metadata"] ?? "").toLowerCase() !== "true") {
      throw new NmiError(400, NMI_ERROR_CODE.InvalidRequest, "Required metadata header not specified");
    }
    await this.#o.proxy.forward(req, res, `${path}${query ? `?${query}` : ""}`, gone.signal);
  }
}

/**
 * The signal that the client went away, created on first use: most answers come from the cache without ever
 * waiting, and an AbortController plus a close listener per request is measurable at NMI's request rates.
 */
class ClientGone {
  readonly #res: ServerResponse;
  #controller: AbortController | undefined;

  constructor(res: ServerResponse) {
    this.#res = res;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      const controller = new AbortController();
      this.#controller = controller;
      const res = this.#res;
      if (!res.writableFinished && (res.destroyed || res.closed || res.socket?.destroyed === true)) controller.abort();
      else res.once("close", () => !res.writableFinished && controller.abort());
    }
    return this.#controller.signal;
  }
}
