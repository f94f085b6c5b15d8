import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** How the server answers one request. */
export interface ScriptedResponse {
  status?: number;
  headers?: Record<string, string>;
  /** A string is sent as is; anything else as JSON. */
  body?: unknown;
  /** Wait this long before answering (real time: keep it short). */
  delayMs?: number;
  /**
   * "socket": close the connection without an answer; "mid-body": send headers and half the body, then close;
   * "stall": send headers and half the body, then nothing more (until the server closes).
   */
  destroy?: "socket" | "mid-body" | "stall";
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage["headers"];
  /** Which upstream request this was, from 1. */
  index: number;
}

export interface TokenBodyOptions {
  token?: string;
  resource?: string;
  /** Seconds until expiry, relative to `nowMs`. */
  expiresInSec?: number;
  nowMs?: number;
}

/** An IMDS success body, numbers as strings as IMDS sends them. */
export function tokenBody(options: TokenBodyOptions = {}): Record<string, string> {
  const now = Math.floor((options.nowMs ?? Date.now()) / 1000);
  const expiresIn = options.expiresInSec ?? 3600;
  return {
    access_token: options.token ?? "token-value",
    refresh_token: "",
    expires_in: String(expiresIn),
    expires_on: String(now + expiresIn),
    not_before: String(now),
    resource: options.resource ?? "https://management.azure.com/",
    token_type: "Bearer",
  };
}

/** A JWT-shaped token (unsigned) carrying `claims`, for tests that decode claims. */
export function fakeJwt(claims: Record<string, unknown>): string {
  const part = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "none", typ: "JWT" })}.${part(claims)}.c2lnbmF0dXJl`;
}

/**
 * An IMDS-like server on 127.0.0.1 that records every request and answers from a script: queued responses
 * first (in order), then `fallback` (by default a valid token named after the request number).
 */
export class ImdsTestServer {
  readonly requests: RecordedRequest[] = [];
  private readonly queue: ScriptedResponse[] = [];
  private readonly waiters: Array<{ count: number; resolve: () => void }> = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  /** The clock the default token answers are computed from (set it to a FakeClock's now). */
  now: () => number = Date.now;
  fallback: (request: RecordedRequest) => ScriptedResponse = (request) => ({
    body: tokenBody({
      token: `token-${request.index}`,
      resource: request.query.get("resource") ?? undefined,
      nowMs: this.now(),
    }),
  });

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<ImdsTestServer> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const instance = new ImdsTestServer(server, `http://127.0.0.1:${port}`);
    server.on("request", (req: IncomingMessage, res: ServerResponse) => instance.handle(req, res));
    return instance;
  }

  /** Answers the next requests with these, in order. */
  enqueue(...responses: ScriptedResponse[]): this {
    this.queue.push(...responses);
    return this;
  }

  /** Resolves once `count` requests have arrived (event-driven, no polling). */
  waitForRequests(count: number): Promise<void> {
    if (this.requests.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://localhost");
    const recorded: RecordedRequest = {
      method: req.method ?? "GET",
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
      index: this.requests.length + 1,
    };
    this.requests.push(recorded);
    for (const waiter of [...this.waiters]) {
      if (this.requests.length >= waiter.count) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
    const scripted = this.queue.shift() ?? this.fallback(recorded);
    const respond = (): void => this.respond(req, res, scripted);
    if (scripted.delayMs) {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        respond();
      }, scripted.delayMs);
      this.timers.add(timer);
    } else {
      respond();
    }
  }

  private respond(req: IncomingMessage, res: ServerResponse, scripted: ScriptedResponse): void {
    if (scripted.destroy === "socket") {
      req.socket.destroy();
      return;
    }
    const body =
      scripted.body === undefined ? "" : typeof scripted.body === "string" ? scripted.body : JSON.stringify(scripted.body);
    const headers = { "content-type": "application/json", ...scripted.headers };
    if (scripted.destroy === "mid-body" || scripted.destroy === "stall") {
      res.writeHead(scripted.status ?? 200, { ...headers, "content-length": String(Buffer.byteLength(body)) });
      const close = scripted.destroy === "mid-body" ? () => req.socket.destroy() : () => undefined;
      res.write(body.slice(0, Math.floor(body.length / 2)), close);
      return;
    }
    res.writeHead(scripted.status ?? 200, headers);
    res.end(body);
  }
}

/** An NMI-style error answer. */
export function nmiError(status: number, error: string, headers: Record<string, string> = {}): ScriptedResponse {
  return {
    status,
    headers: { "x-podidentity-nmi": "test", ...headers },
    body: { error, error_description: `test: ${error}` },
  };
}
