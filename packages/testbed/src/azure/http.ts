import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";

/** Where an emulator listens: loopback and an ephemeral port unless told otherwise. */
export interface ListenOptions {
  host?: string;
  port?: number;
}

export interface TlsMaterial {
  certPem: string;
  keyPem: string;
}

/** A thrown response: handlers throw it, the server turns it into the service's error shape. */
export class HttpError extends Error {
  readonly statusCode: number;
  readonly body: unknown;
  readonly headers: Record<string, string>;

  constructor(statusCode: number, body: unknown, headers: Record<string, string> = {}) {
    super(`HTTP ${statusCode}`);
    this.name = "HttpError";
    this.statusCode = statusCode;
    this.body = body;
    this.headers = headers;
  }
}

/** Signals that a body went over the limit; each emulator maps it to its own error shape. */
export class BodyTooLargeError extends Error {
  readonly limitBytes: number;

  constructor(limitBytes: number) {
    super(`request body exceeds ${limitBytes} bytes`);
    this.name = "BodyTooLargeError";
    this.limitBytes = limitBytes;
  }
}

/**
 * Reads a request body up to `limitBytes`. Stops reading (and rejects) as soon as the limit is
 * passed, so a client cannot make the emulator buffer an unbounded body.
 */
export function readBody(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? "0");
    if (Number.isFinite(declared) && declared > limitBytes) {
      req.resume();
      reject(new BodyTooLargeError(limitBytes));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on("data", (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limitBytes) {
        failed = true;
        reject(new BodyTooLargeError(limitBytes));
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on("error", (error) => {
      if (!failed) reject(error);
    });
  });
}

export function sendJson(
  res: ServerResponse,
  statusCode: number,
  body: unknown,
  headers: Record<string, string> = {},
  contentType = "application/json; charset=utf-8",
): void {
  const text = JSON.stringify(body);
  res.writeHead(statusCode, {
    ...headers,
    "content-type": contentType,
    "content-length": String(Buffer.byteLength(text)),
  });
  res.end(text);
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/** A started listener; `close()` also drops keep-alive connections so tests end promptly. */
export class RunningServer {
  readonly server: Server;
  readonly url: string;
  readonly host: string;
  readonly port: number;

  constructor(server: Server, protocol: "http" | "https") {
    this.server = server;
    const address = server.address() as AddressInfo;
    this.host = address.address;
    this.port = address.port;
    const hostPart = address.family === "IPv6" ? `[${address.address}]` : address.address;
    this.url = `${protocol}://${hostPart}:${address.port}`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

/**
 * Starts an HTTP(S) listener running `handler`. `onError` turns anything the handler throws into
 * a response, so a malformed request can never crash the emulator.
 */
export async function listen(
  handler: RequestHandler,
  onError: (error: unknown, req: IncomingMessage, res: ServerResponse) => void,
  options: ListenOptions & { tls?: TlsMaterial },
): Promise<RunningServer> {
  const wrapped = (req: IncomingMessage, res: ServerResponse): void => {
    handler(req, res).catch((error: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      try {
        onError(error, req, res);
      } catch {
        res.destroy();
      }
    });
  };
  const server = options.tls
    ? createHttpsServer({ cert: options.tls.certPem, key: options.tls.keyPem }, wrapped)
    : createHttpServer(wrapped);
  server.on("clientError", (_error, socket) => {
    // Malformed HTTP never reaches a handler; answer like any server would instead of crashing.
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  return new RunningServer(server, options.tls ? "https" : "http");
}

/** Parses the request URL; the host part is irrelevant to routing. */
export function requestUrl(req: IncomingMessage): URL {
  return new URL(req.url ?? "/", "http://emulator.invalid");
}

/** Splits a path into decoded segments; undefined when a segment is not valid percent-encoding. */
export function pathSegments(pathname: string): string[] | undefined {
  try {
    return pathname.split("/").filter((p) => p.length > 0).map((p) => decodeURIComponent(p));
  } catch {
    return undefined;
  }
}

/** Waits `ms` milliseconds of real time; used only for configured latency, never for clocked behaviour. */
export type SleepFn = (ms: number) => Promise<void>;
export const realSleep: SleepFn = (ms) =>
  ms <= 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, ms));
