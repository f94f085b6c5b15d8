import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";

/** Defaults of {@link AzureHostProxy}: every connection, wait and size is bounded. */
export const DEFAULT_AZURE_HOST_PROXY_OPTIONS = {
  host: "127.0.0.1",
  port: 0,
  /** Client connections open at once (tunnels included); more are refused by the listener. */
  maxConnections: 256,
  /** Request line plus headers of a CONNECT request. */
  maxHeaderBytes: 8 * 1024,
  /** A client must send its whole CONNECT request within this time. */
  headersTimeoutMs: 10_000,
  /** Connecting to the emulator behind a tunnel. */
  upstreamConnectTimeoutMs: 5_000,
  /** A tunnel with no traffic in either direction for this long is closed. */
  tunnelIdleTimeoutMs: 120_000,
} as const;

/** Where the proxy sends a host name: an emulator's address and port. */
export interface ProxyTarget {
  host: string;
  port: number;
}

export interface AzureHostProxyOptions {
  host?: string;
  port?: number;
  maxConnections?: number;
  maxHeaderBytes?: number;
  headersTimeoutMs?: number;
  upstreamConnectTimeoutMs?: number;
  tunnelIdleTimeoutMs?: number;
}

/** One CONNECT the proxy answered, for tests and the CLI's summary (no payload, only where it went). */
export interface ProxyDecision {
  authority: string;
  status: 200 | 400 | 403 | 502;
}

const HOST_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const MAX_DECISIONS = 1_000;
const REASONS = { 400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 431: "Request Header Fields Too Large", 502: "Bad Gateway" } as const;

/**
 * An HTTP CONNECT proxy that maps real Azure host names (`<vault>.vault.azure.net:443`, `login.microsoftonline.com:443`,
 * …) to the testbed's emulators, so an unchanged app reaches them by HTTPS_PROXY alone: the TLS handshake inside the
 * tunnel is the app's own with the emulator, whose leaf covers the real names (see `AZURE_HOST_NAMES` in
 * src/cloud.ts). It never forwards anywhere else: an unmapped host, another port or a plain-HTTP request is refused
 * with 403 and a message naming the mapped hosts.
 */
export class AzureHostProxy {
  readonly #routes = new Map<string, ProxyTarget>();
  readonly #options: Required<AzureHostProxyOptions>;
  readonly #sockets = new Set<Duplex>();
  readonly #decisions: ProxyDecision[] = [];
  #server: Server | undefined;
  #port = 0;

  constructor(options: AzureHostProxyOptions = {}) {
    const resolved = { ...DEFAULT_AZURE_HOST_PROXY_OPTIONS, ...definedOnly(options) };
    for (const key of ["maxConnections", "maxHeaderBytes", "headersTimeoutMs", "upstreamConnectTimeoutMs", "tunnelIdleTimeoutMs"] as const) {
      const value = resolved[key];
      if (!Number.isInteger(value) || value <= 0) throw new RangeError(`AzureHostProxy: option ${key} must be a positive integer, got ${String(value)}`);
    }
    if (!Number.isInteger(resolved.port) || resolved.port < 0 || resolved.port > 65_535) throw new RangeError(`AzureHostProxy: option port must be 0-65535, got ${String(resolved.port)}`);
    this.#options = resolved;
  }

  /** Maps `hostName:443` to `target`. Host names are matched exactly, case-insensitively. */
  route(hostName: string, target: ProxyTarget): this {
    const name = hostName.toLowerCase();
    if (!HOST_NAME.test(name)) throw new TypeError(`AzureHostProxy.route: "${hostName}" is not a host name`);
    this.#routes.set(name, target);
    return this;
  }

  /** The mapped host names, sorted. */
  get hostNames(): string[] {
    return [...this.#routes.keys()].sort();
  }

  /** The most recent CONNECT decisions (at most 1,000), oldest first. */
  get decisions(): readonly ProxyDecision[] {
    return this.#decisions;
  }

  get url(): string {
    return `http://${this.#options.host}:${this.#port}`;
  }

  async start(): Promise<this> {
    const server = createServer({ maxHeaderSize: this.#options.maxHeaderBytes, headersTimeout: this.#options.headersTimeoutMs, requestTimeout: this.#options.headersTimeoutMs }, (req, res) => this.#plainRequest(req, res));
    server.maxConnections = this.#options.maxConnections;
    server.on("connection", (socket: Socket) => this.#track(socket));
    server.on("connect", (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#connect(req, socket, head));
    server.on("clientError", (error: Error & { code?: string }, socket: Duplex) => {
      // Oversized headers, a slow request or garbage: answered once, then the connection is closed.
      if (!socket.writable) socket.destroy();
      else if (error.code === "HPE_HEADER_OVERFLOW") socket.end(this.#refusal(431, `request headers larger than ${this.#options.maxHeaderBytes} bytes`));
      else if (error.code === "ERR_HTTP_REQUEST_TIMEOUT") socket.end(this.#refusal(408, `no complete request within ${this.#options.headersTimeoutMs} ms`));
      else socket.end(this.#refusal(400, "not an HTTP request"));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.#options.port, this.#options.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.#server = server;
    const address = server.address();
    this.#port = typeof address === "object" && address ? address.port : 0;
    return this;
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  #track(socket: Duplex): void {
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
  }

  #record(authority: string, status: ProxyDecision["status"]): void {
    this.#decisions.push({ authority, status });
    if (this.#decisions.length > MAX_DECISIONS) this.#decisions.shift();
  }

  #refusal(status: keyof typeof REASONS, message: string): string {
    const body = JSON.stringify({ error: "podidentity_testbed_proxy_refused", error_description: message });
    const reason = REASONS[status];
    return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
  }

  // Absolute-form requests (plain-HTTP proxying) would reach hosts the testbed does not serve: always refused.
  #plainRequest(req: IncomingMessage, res: ServerResponse): void {
    const body = JSON.stringify({
      error: "podidentity_testbed_proxy_refused",
      error_description: `the testbed proxy only tunnels HTTPS (CONNECT) to ${this.hostNames.join(", ")}; plain HTTP (${req.method ?? "?"} ${String(req.url).slice(0, 200)}) is not forwarded — put 127.0.0.1 in NO_PROXY for the IMDS emulator`,
    });
    this.#record(String(req.url).slice(0, 200), 403);
    res.writeHead(403, { "content-type": "application/json", connection: "close" }).end(body);
  }

  #connect(req: IncomingMessage, client: Duplex, head: Buffer): void {
    const authority = String(req.url ?? "");
    client.on("error", () => client.destroy());
    const match = /^([^:\s]+):(\d{1,5})$/.exec(authority);
    if (!match) {
      this.#record(authority.slice(0, 200), 400);
      client.end(this.#refusal(400, "CONNECT needs host:port"));
      return;
    }
    const hostName = match[1]!.toLowerCase();
    const port = Number(match[2]);
    const target = port === 443 ? this.#routes.get(hostName) : undefined;
    if (!target) {
      this.#record(authority, 403);
      client.end(this.#refusal(403, `the testbed proxy does not forward ${authority}: it only reaches the emulators, as ${this.hostNames.map((h) => `${h}:443`).join(", ")}`));
      return;
    }
    const upstream = connect({ host: target.host, port: target.port });
    this.#track(upstream);
    let established = false;
    const connectTimer = setTimeout(() => upstream.destroy(new Error("connect timeout")), this.#options.upstreamConnectTimeoutMs);
    upstream.once("connect", () => {
      clearTimeout(connectTimer);
      established = true;
      this.#record(authority, 200);
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length > 0) upstream.write(head);
      const idle = (): void => {
        client.destroy();
        upstream.destroy();
      };
      upstream.setTimeout(this.#options.tunnelIdleTimeoutMs, idle);
      if ("setTimeout" in client && typeof client.setTimeout === "function") (client as Socket).setTimeout(this.#options.tunnelIdleTimeoutMs, idle);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.once("error", () => {
      clearTimeout(connectTimer);
      // Before the tunnel was established the client still waits for an answer; afterwards only the sockets close.
      if (!established && client.writable) {
        this.#record(authority, 502);
        client.end(this.#refusal(502, `the emulator behind ${authority} (${target.host}:${target.port}) did not accept the connection; is the testbed still running?`));
      } else client.destroy();
    });
    upstream.once("close", () => {
      if (established) client.destroy();
    });
    client.once("close", () => upstream.destroy());
  }
}

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;
}
