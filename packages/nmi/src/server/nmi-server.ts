import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Logger } from "pino";
import type { NmiConfig } from "../config";
import { NMI_ERROR_CODE, NmiError } from "../errors";
import type { NmiMetrics } from "../metrics";
import { ConnectionGuard } from "./connection-guard";
import { errorAnswer, rawJsonAnswer, sendJson } from "./http-response";
import { PodRateLimiter } from "./pod-rate-limiter";
import { ProxyAllowlist } from "./proxy-allowlist";
import type { RefusalLog } from "./refusal-log";
import { parseRequestTarget, type ParsedRequestTarget } from "./request-route";
import { normalizeAddress } from "./token-handler";
import type { TokenHandler } from "./token-handler";
import type { UpstreamProxy } from "./upstream-proxy";

export interface NmiServerOptions {
  config: NmiConfig;
  handler: TokenHandler;
  proxy: UpstreamProxy;
  metrics: NmiMetrics;
  logger: Logger;
  /** Logs refusals (403, 429, 503) for operators, rate-limited per pod. */
  refusals?: RefusalLog;
}

/** Route labels of answered requests (metrics, logs): the request-route kinds and the allowlist's entry names. */
type RouteLabel = string;

/**
 * The IMDS-compatible listener (docs/contract.md's routes), on the canonical path (canonical-path.ts): every
 * spelling of the token path is the token route, anything else under `/metadata/identity/` is refused,
 * `/host/token`, and the proxy allowlist (proxy-allowlist.ts) for the rest — unknown paths answered 404 by NMI.
 * Proxied requests are rate-limited per pod and node-wide (pod-rate-limiter.ts). Bounded header size, request
 * time, idle time and connection count (connection-guard.ts); every answer, including those for requests Node's
 * parser rejects, is IMDS-shaped JSON with NMI's header. A client that goes away aborts its wait and upstream call.
 */
export class NmiServer {
  readonly #o: NmiServerOptions;
  readonly #server: Server;
  readonly #debug: boolean;
  readonly #allowlist: ProxyAllowlist;
  readonly #proxyRate: PodRateLimiter;
  readonly #guard: ConnectionGuard;

  constructor(options: NmiServerOptions) {
    this.#o = options;
    this.#debug = options.logger.isLevelEnabled("debug");
    const { config } = options;
    this.#allowlist = new ProxyAllowlist({ blockInstanceMetadata: config.blockInstanceMetadata, allowImdsRoutes: config.allowImdsRoutes });
    this.#proxyRate = new PodRateLimiter({
      requestsPerSecondPerPod: config.proxyRequestsPerSecondPerPod,
      burstPerPod: config.proxyBurstPerPod,
      requestsPerSecond: config.proxyRequestsPerSecond,
      burst: config.proxyBurst,
      maxTrackedPods: config.proxyMaxTrackedPods,
    });
    this.#server = createServer(
      {
        requestTimeout: config.requestTimeoutMs,
        headersTimeout: config.headersTimeoutMs,
        maxHeaderSize: config.maxHeaderBytes,
        // Node enforces the two timeouts above only when it checks connections (default every 30 s).
        connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.floor(config.headersTimeoutMs / 2))),
        keepAliveTimeout: 5_000,
        // Node would answer a missing Host with a bare 400 (no JSON, no NMI header): #handle answers it instead.
        requireHostHeader: false,
      },
      (req, res) => void this.#handle(req, res),
    );
    this.#guard = new ConnectionGuard(this.#server, {
      maxConnections: config.maxConnections,
      idleConnectionTimeoutMs: config.idleConnectionTimeoutMs,
      refusal: () => {
        this.#o.metrics.observeRequest("invalid", 503, NMI_ERROR_CODE.Overloaded, 0);
        return rawJsonAnswer(
          503,
          { error: NMI_ERROR_CODE.Overloaded, error_description: `NMI has ${config.maxConnections} connections with requests in progress (--max-connections); retry shortly` },
          { "retry-after": String(config.retryAfterSeconds) },
        );
      },
      onClose: (reason) => this.#o.metrics.connectionsClosed.inc({ reason }),
    });
    // Malformed HTTP (bad chunking, HTTP/0.9, invalid tokens), oversized headers, timeouts: still an IMDS-shaped
    // answer where the socket allows one. Not over an answer already being written on the same connection.
    this.#server.on("clientError", (error: NodeJS.ErrnoException, socket: Socket) => {
      const current = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
      if (!socket.writable || error.code === "ECONNRESET" || current?.headersSent === true) return socket.destroy();
      const status = error.code === "HPE_HEADER_OVERFLOW" ? 431 : error.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
      this.#o.metrics.observeRequest("invalid", status, NMI_ERROR_CODE.InvalidRequest, 0);
      socket.end(rawJsonAnswer(status, { error: NMI_ERROR_CODE.InvalidRequest, error_description: `malformed or incomplete HTTP request (${error.code ?? "error"})` }));
      socket.destroySoon();
    });
    // CONNECT: Node would drop the connection without a word. NMI is no tunnel.
    this.#server.on("connect", (_req: IncomingMessage, socket: Socket) => {
      this.#o.metrics.observeRequest("invalid", 405, NMI_ERROR_CODE.InvalidRequest, 0);
      socket.on("error", () => undefined);
      socket.end(rawJsonAnswer(405, { error: NMI_ERROR_CODE.InvalidRequest, error_description: "method CONNECT is not supported: NMI is no proxy" }, { allow: "GET" }));
      socket.destroySoon();
    });
  }

  /** Connections open now (bounded by --max-connections). */
  get openConnections(): number {
    return this.#guard.open;
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
    let route: RouteLabel = "invalid";
    let pending: Promise<unknown> | undefined;
    // NMI never switches protocols: a client that asked to gets its answer and the connection closed.
    if (req.headers.upgrade !== undefined) res.shouldKeepAlive = false;
    try {
      checkHost(req);
      const target = parseRequestTarget(req.url ?? "/");
      route = target.route;
      switch (target.route) {
        case "token":
          pending = this.#o.handler.handleToken(req, res, target, gone);
          break;
        case "malformed-token":
          throw new NmiError(400, NMI_ERROR_CODE.InvalidRequest, "Invalid request: malformed token path; use /metadata/identity/oauth2/token");
        case "identity":
          throw new NmiError(403, NMI_ERROR_CODE.Forbidden, "NMI does not pass /metadata/identity/ to the node's IMDS (it describes the node's identities); pods get their token from /metadata/identity/oauth2/token");
        case "host-token":
          pending = this.#o.handler.handleHostToken(req, res, target, gone);
          break;
        case "metadata": {
          const method = req.method ?? "GET";
          const decision = this.#allowlist.decide(target.path, method, target.ambiguous);
          route = decision.action === "not-found" ? "not-found" : decision.name;
          switch (decision.action) {
            case "not-found":
              throw new NmiError(404, NMI_ERROR_CODE.NotFound, `API not found: Path = ${JSON.stringify(clip(target.path))}, Method = ${JSON.stringify(clip(method))}`);
            case "method-not-allowed":
              throw new NmiError(405, NMI_ERROR_CODE.InvalidRequest, `Http method not allowed: Path = ${JSON.stringify(clip(target.path))}, Method = ${JSON.stringify(clip(method))}`, {
                headers: { allow: decision.allow },
              });
            case "forbidden":
              throw new NmiError(403, NMI_ERROR_CODE.Forbidden, decision.reason);
            case "proxy":
              pending = this.#forward(req, res, target, gone);
              break;
          }
          break;
        }
      }
    } catch (error) {
      this.#finish(req, res, route, started, error);
      return;
    }
    if (pending === undefined) this.#finish(req, res, route, started, undefined);
    else pending.then(() => this.#finish(req, res, route, started, undefined), (error: unknown) => this.#finish(req, res, route, started, error));
  }

  /** Answers a failure (the one place errors become HTTP answers), then metrics and the debug log line. */
  #finish(req: IncomingMessage, res: ServerResponse, route: RouteLabel, started: number, error: unknown): void {
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
      if (answer.status === 403 || answer.status === 429 || answer.status === 503) {
        const description = (answer.body as { error_description?: unknown } | undefined)?.error_description;
        this.#o.refusals?.record(req, normalizeAddress(req.socket.remoteAddress), status, code, route, typeof description === "string" ? description : "");
      }
    }
    this.#o.metrics.observeRequest(route, status, code, (performance.now() - started) / 1000);
    if (this.#debug) this.#o.logger.debug({ route, status, code, remote: req.socket.remoteAddress, ms: Math.round(performance.now() - started) }, "request answered");
  }

  /** An allowed route: Metadata header, the pod's and the node's rate, then the canonical path and query upstream. */
  async #forward(req: IncomingMessage, res: ServerResponse, target: ParsedRequestTarget, gone: ClientGone): Promise<void> {
    if (this.#o.config.metadataHeaderRequired && String(req.headers["metadata"] ?? "").toLowerCase() !== "true") {
      throw new NmiError(400, NMI_ERROR_CODE.InvalidRequest, "Required metadata header not specified");
    }
    const rate = this.#proxyRate.take(normalizeAddress(req.socket.remoteAddress));
    if (!rate.ok) {
      const who = rate.scope === "pod" ? "this pod" : "all pods on this node together";
      throw new NmiError(429, NMI_ERROR_CODE.RateLimited, `Too many requests: ${who} went over NMI's rate for requests passed to the node's IMDS; retry after ${rate.retryAfterSeconds} s`, {
        retryAfterSeconds: rate.retryAfterSeconds,
      });
    }
    await this.#o.proxy.forward(req, res, `${target.path}${target.query ? `?${target.query}` : ""}`, gone.signal);
  }
}

/** RFC 9112 §3.2: an HTTP/1.1 request without Host, or with more than one, is answered 400. */
function checkHost(req: IncomingMessage): void {
  let hosts = 0;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === "host") hosts++;
  const close = { headers: { connection: "close" } };
  if (hosts > 1) throw new NmiError(400, NMI_ERROR_CODE.InvalidRequest, "the request has more than one Host header", close);
  if (hosts === 0 && req.httpVersion === "1.1") throw new NmiError(400, NMI_ERROR_CODE.InvalidRequest, "the request has no Host header (required in HTTP/1.1)", close);
}

/** A client-chosen string in a message: bounded. */
function clip(value: string): string {
  return value.length > 200 ? `${value.slice(0, 200)}…` : value;
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
