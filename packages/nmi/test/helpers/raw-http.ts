import { createServer, request, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** One HTTP/1.x answer parsed from the raw bytes a server wrote (tests send targets no client would leave alone). */
export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

/** Parses the first answer in `raw` (status line, headers, Content-Length body); undefined when there is none. */
export function parseRawAnswer(raw: string): RawAnswer | undefined {
  const end = raw.indexOf("\r\n\r\n");
  if (end < 0) return undefined;
  const [statusLine, ...lines] = raw.slice(0, end).split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? "");
  if (m === null) return undefined;
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = headers["content-length"] === undefined ? undefined : Number(headers["content-length"]);
  const text = length === undefined ? raw.slice(end + 4) : Buffer.from(raw.slice(end + 4)).subarray(0, length).toString();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: the caller asserts on that
  }
  return { status: Number(m[1]), headers, text, body };
}

/** An answer is IMDS-shaped when it is JSON with string `error` and `error_description` (or a 2xx JSON object). */
export function isImdsErrorShape(a: RawAnswer): boolean {
  const b = a.body as { error?: unknown; error_description?: unknown } | undefined;
  return typeof b === "object" && b !== null && typeof b.error === "string" && typeof b.error_description === "string";
}

/** The claims of a JWT (no signature check: the test only asks whose token it is). */
export function jwtClaims(token: string): Record<string, unknown> {
  const payload = token.split(".")[1] ?? "";
  return JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as Record<string, unknown>;
}

export interface RecordedRequest {
  method: string;
  /** The request target exactly as it arrived. */
  url: string;
  headers: IncomingHttpHeaders;
}

/**
 * A pass-through HTTP server between NMI and the IMDS emulator that records every request target as it arrived
 * (Node's server does not normalise `req.url`) and forwards it unchanged: what "the node's IMDS received".
 */
export class RecordingUpstream {
  readonly requests: RecordedRequest[] = [];
  readonly #server: Server;
  readonly #target: URL;

  constructor(target: string) {
    this.#target = new URL(target);
    this.#server = createServer((req, res) => {
      this.requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
      const up = request(
        { host: this.#target.hostname, port: this.#target.port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      up.on("error", () => res.destroy());
      req.pipe(up);
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
