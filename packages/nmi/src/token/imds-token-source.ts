import type { AzureIdentity } from "@podidentity/api";
import { fetchBuffer, type HttpAgent } from "../http-request";
import { upstreamFailure } from "./upstream-error";
import type { AcquiredToken, TokenSource } from "./token-source";
import type { UpstreamLimiter } from "./upstream-limiter";

export interface ImdsTokenSourceOptions {
  /** Base URL of the real IMDS, e.g. http://169.254.169.254 (`--upstream-imds`). */
  upstream: string;
  agent: HttpAgent;
  limiter: UpstreamLimiter;
  timeoutMs: number;
  connectTimeoutMs: number;
  retryAfterSeconds: number;
  now: () => number;
  /** Per upstream call: outcome (`ok`, HTTP status, or `error`) and seconds taken (metrics). */
  onCall?: (outcome: string, seconds: number) => void;
}

/** A JSON token field: IMDS sends strings, some emulators numbers. */
function num(v: unknown): number | undefined {
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
  return undefined;
}

/** Parses IMDS's token JSON; `expires_on` may be epoch seconds or a date, with `expires_in` as fallback. */
export function parseImdsToken(body: unknown, resource: string, fallbackClientId: string, nowMs: number): AcquiredToken | undefined {
  const b = body as Record<string, unknown> | null;
  if (b === null || typeof b !== "object" || typeof b["access_token"] !== "string") return undefined;
  let expiresOnMs: number | undefined;
  const on = num(b["expires_on"]);
  if (on !== undefined) expiresOnMs = on * 1000;
  else if (typeof b["expires_on"] === "string" && !Number.isNaN(Date.parse(b["expires_on"]))) expiresOnMs = Date.parse(b["expires_on"]);
  const inSec = num(b["expires_in"]);
  if (expiresOnMs === undefined && inSec !== undefined) expiresOnMs = nowMs + inSec * 1000;
  if (expiresOnMs === undefined) return undefined;
  const nb = num(b["not_before"]);
  return {
    accessToken: b["access_token"],
    expiresOnMs,
    ...(nb !== undefined && { notBeforeMs: nb * 1000 }),
    resource: typeof b["resource"] === "string" ? b["resource"] : resource,
    tokenType: typeof b["token_type"] === "string" ? b["token_type"] : "Bearer",
    clientId: typeof b["client_id"] === "string" ? b["client_id"] : fallbackClientId,
  };
}

/**
 * Type 0 (user-assigned managed identity): asks the node's real IMDS for a token with the **AzureIdentity's**
 * client ID (never the one the pod sent), through the node's upstream limiter, with a deadline.
 */
export class ImdsTokenSource implements TokenSource {
  readonly #o: ImdsTokenSourceOptions;

  constructor(options: ImdsTokenSourceOptions) {
    this.#o = options;
  }

  async acquire(identity: AzureIdentity, resource: string, signal?: AbortSignal): Promise<AcquiredToken[]> {
    const clientId = identity.spec.clientID ?? "";
    const url = new URL("/metadata/identity/oauth2/token", this.#o.upstream);
    url.searchParams.set("api-version", "2018-02-01");
    url.searchParams.set("resource", resource);
    url.searchParams.set("client_id", clientId);
    return this.#o.limiter.run(async () => {
      const started = performance.now();
      const seconds = (): number => (performance.now() - started) / 1000;
      let status: number;
      let body: unknown;
      try {
        const res = await fetchBuffer(url, {
          headers: { metadata: "true" },
          agent: this.#o.agent,
          timeoutMs: this.#o.timeoutMs,
          connectTimeoutMs: this.#o.connectTimeoutMs,
          maxBodyBytes: 1024 * 1024,
          ...(signal !== undefined && { signal }),
        });
        status = res.status;
        const text = res.body.toString("utf8");
        try {
          body = JSON.parse(text);
        } catch {
          body = { error: "invalid_response", error_description: text.slice(0, 200) };
        }
      } catch (cause) {
        this.#o.onCall?.("error", seconds());
        throw upstreamFailure("the upstream IMDS", undefined, undefined, this.#o.retryAfterSeconds, cause);
      }
      this.#o.onCall?.(status === 200 ? "ok" : String(status), seconds());
      if (status !== 200) throw upstreamFailure("the upstream IMDS", status, body, this.#o.retryAfterSeconds);
      const token = parseImdsToken(body, resource, clientId, this.#o.now());
      if (token === undefined) {
        throw upstreamFailure("the upstream IMDS", 502, undefined, this.#o.retryAfterSeconds);
      }
      return [token];
    });
  }
}
