import type { IncomingMessage, ServerResponse } from "node:http";
import { fetchBuffer, type HttpAgent, type HttpResponse } from "../http-request";
import { NMI_ERROR_CODE, NmiError } from "../errors";
import { upstreamFailure } from "../token/upstream-error";
import { NMI_VERSION, NMI_VERSION_HEADER } from "../version";

export interface UpstreamProxyOptions {
  upstream: string;
  agent: HttpAgent;
  timeoutMs: number;
  connectTimeoutMs: number;
  maxBodyBytes: number;
  retryAfterSeconds: number;
}

// RFC 9110 §7.6.1 connection-specific fields, plus what the HTTP client computes itself.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
]);

async function readBounded(req: IncomingMessage, maxBytes: number): Promise<Buffer | undefined> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > maxBytes) throw new NmiError(413, NMI_ERROR_CODE.InvalidRequest, `request body over ${maxBytes} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new NmiError(413, NMI_ERROR_CODE.InvalidRequest, `request body over ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return size === 0 ? undefined : Buffer.concat(chunks);
}

/**
 * Passes a request to the upstream IMDS and its answer back (status, headers, body), as v1.8's default route
 * did. Only ever to the configured upstream: the client picks the path and query, never the host, so NMI is no
 * open proxy. Bodies are bounded both ways; unreachable or timed out → 503 podidentity_upstream_unavailable.
 */
export class UpstreamProxy {
  readonly #o: UpstreamProxyOptions;

  constructor(options: UpstreamProxyOptions) {
    this.#o = options;
  }

  /** Returns the upstream status (for metrics); throws NmiError when upstream cannot be reached. */
  async forward(req: IncomingMessage, res: ServerResponse, pathAndQuery: string, signal?: AbortSignal): Promise<number> {
    const body = await readBounded(req, this.#o.maxBodyBytes);
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
    }
    const url = new URL(this.#o.upstream);
    const target = `${url.origin}${pathAndQuery.startsWith("/") ? pathAndQuery : `/${pathAndQuery}`}`;
    let upstream: HttpResponse;
    try {
      upstream = await fetchBuffer(target, {
        method: req.method ?? "GET",
        headers,
        ...(body !== undefined && { body }),
        agent: this.#o.agent,
        timeoutMs: this.#o.timeoutMs,
        connectTimeoutMs: this.#o.connectTimeoutMs,
        maxBodyBytes: this.#o.maxBodyBytes,
        ...(signal !== undefined && { signal }),
      });
    } catch (cause) {
      throw upstreamFailure("the upstream IMDS", undefined, undefined, this.#o.retryAfterSeconds, cause);
    }
    const out: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(upstream.headers)) {
      if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
    }
    out[NMI_VERSION_HEADER] = NMI_VERSION;
    out["content-length"] = String(upstream.body.length);
    if (!res.headersSent && !res.destroyed) {
      res.writeHead(upstream.status, out);
      res.end(upstream.body);
    }
    return upstream.status;
  }
}
