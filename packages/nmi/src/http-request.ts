import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";

/**
 * NMI's outgoing HTTP, on node:http. NMI used undici at first; its import alone cost ~28 MB of RSS (issue 5 budgets
 * < 100 MB for the whole agent), while node:http is already loaded for the server.
 */
export interface HttpRequestOptions {
  method?: string;
  headers?: OutgoingHttpHeaders;
  body?: Buffer | string;
  agent?: HttpAgent | HttpsAgent;
  /** Whole request deadline (connect, headers and body). */
  timeoutMs?: number;
  /** Deadline for the TCP connection alone (an unreachable IMDS should fail fast, not at timeoutMs). */
  connectTimeoutMs?: number;
  signal?: AbortSignal;
  /** Answers larger than this fail (ResponseTooLargeError). */
  maxBodyBytes?: number;
  /**
   * Path and query sent on the request line exactly as given, instead of the URL's (which WHATWG parsing has
   * normalised): the proxy sends the canonical path it classified, with no second parser in between.
   */
  path?: string;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export class ResponseTooLargeError extends Error {
  readonly code = "RESPONSE_TOO_LARGE";
  constructor(maxBytes: number) {
    super(`the answer exceeded ${maxBytes} bytes`);
    this.name = "ResponseTooLargeError";
  }
}

/** Opens a request and resolves with the response head; the caller consumes the body. */
export function openRequest(url: string | URL, options: HttpRequestOptions = {}): Promise<IncomingMessage> {
  const target = typeof url === "string" ? new URL(url) : url;
  const send = target.protocol === "https:" ? httpsRequest : httpRequest;
  const signals = [options.signal, options.timeoutMs === undefined ? undefined : AbortSignal.timeout(options.timeoutMs)].filter((s) => s !== undefined);
  const signal = signals.length === 0 ? undefined : signals.length === 1 ? signals[0] : AbortSignal.any(signals);
  return new Promise<IncomingMessage>((resolve, reject) => {
    const req = send(
      target,
      {
        method: options.method ?? "GET",
        headers: options.headers,
        ...(options.path !== undefined && { path: options.path }),
        ...(options.agent !== undefined && { agent: options.agent }),
        ...(signal !== undefined && { signal }),
      },
      resolve,
    );
    req.on("error", (error: Error) => reject(signal?.aborted && signal.reason instanceof Error ? signal.reason : error));
    const connectTimeoutMs = options.connectTimeoutMs;
    if (connectTimeoutMs !== undefined) {
      req.once("socket", (socket) => {
        if (!socket.connecting) return; // a kept-alive socket
        const timer = setTimeout(() => req.destroy(new Error(`connect timeout after ${connectTimeoutMs} ms`)), connectTimeoutMs);
        socket.once("connect", () => clearTimeout(timer));
        socket.once("close", () => clearTimeout(timer));
      });
    }
    req.end(options.body);
  });
}

/** One request, the whole (bounded) body read. Rejects on network errors, timeouts and oversized answers. */
export async function fetchBuffer(url: string | URL, options: HttpRequestOptions = {}): Promise<HttpResponse> {
  const res = await openRequest(url, options);
  const chunks: Buffer[] = [];
  let size = 0;
  const max = options.maxBodyBytes ?? 4 * 1024 * 1024;
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > max) throw new ResponseTooLargeError(max);
      chunks.push(chunk);
    }
  } catch (error) {
    res.destroy();
    throw error;
  }
  return { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) };
}

export { HttpAgent, HttpsAgent };
