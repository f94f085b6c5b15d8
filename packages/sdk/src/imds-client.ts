import { Agent, request } from "undici";
import type { Dispatcher } from "undici";
import { PodIdentityAuthenticationError, PodIdentityUnavailableError } from "./errors";
import type { OAuthErrorBody } from "./errors";
import { hintForErrorCode, NMI_UNAVAILABLE_CODES } from "./nmi-error-codes";
import { parseTokenResponse } from "./parse-token-response";
import type { UpstreamToken } from "./parse-token-response";
import { DEFAULT_POD_IDENTITY_CREDENTIAL_OPTIONS } from "./pod-identity-credential-options";
import type { IdentitySelector } from "./pod-identity-credential-options";
import { parseRetryAfter } from "./retry-policy";
import type { TokenSource } from "./token-source";

export const IMDS_TOKEN_PATH = "/metadata/identity/oauth2/token";
export const IMDS_API_VERSION = "2018-02-01";
/** Every NMI response carries it; plain IMDS never does. */
export const NMI_VERSION_HEADER = "x-podidentity-nmi";

export interface ImdsClientSettings {
  endpoint: URL;
  selector: IdentitySelector;
  connectTimeoutMs: number;
  timeoutMs: number;
  now: () => number;
  /** When absent, the client owns a private Agent: a global dispatcher or HTTP(S)_PROXY must never apply. */
  dispatcher?: Dispatcher;
}

/** Failures of the transport that a later attempt may not see (IMDS docs: "timeout → exponential backoff"). */
const TRANSIENT_NETWORK_CODES = new Set([
  "ECONNREFUSED", // NMI restarting on this node
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EAI_AGAIN",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
]);

const RETRYABLE_STATUS = new Set([404, 408, 410, 429]);

class BodyTooLarge extends Error {}

function errorCode(error: unknown): string | undefined {
  for (let e = error; e !== null && typeof e === "object"; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}

function parseErrorBody(status: number, text: string): OAuthErrorBody {
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === "object" && parsed !== null && typeof (parsed as { error?: unknown }).error === "string") {
      const body = parsed as Record<string, unknown>;
      return { ...body, error: body.error as string, error_description: String(body.error_description ?? "") };
    }
  } catch {
    // not JSON: described below from the text
  }
  return { error: `http_${status}`, error_description: text.trim().slice(0, 300) };
}

async function readBounded(body: Dispatcher.ResponseData["body"], limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      body.destroy();
      throw new BodyTooLarge();
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** One GET to the IMDS token endpoint, its answer or failure turned into a typed result. */
export class ImdsClient implements TokenSource {
  readonly kind = "imds";
  readonly description: string;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;

  constructor(private readonly settings: ImdsClientSettings) {
    this.description = settings.endpoint.href;
    this.ownsDispatcher = settings.dispatcher === undefined;
    this.dispatcher = settings.dispatcher ?? new Agent({ connect: { timeout: settings.connectTimeoutMs } });
  }

  tokenUrl(resource: string): string {
    const url = new URL(this.settings.endpoint.href);
    // A bare origin's pathname is "/": joining it naively would send "//metadata/…".
    url.pathname = `${url.pathname.replace(/\/+$/, "")}${IMDS_TOKEN_PATH}`;
    url.searchParams.set("api-version", IMDS_API_VERSION);
    url.searchParams.set("resource", resource);
    const selector = this.settings.selector;
    if (selector.kind !== "system") url.searchParams.set(selector.kind, selector.value);
    return url.href;
  }

  async requestToken(resource: string, signal: AbortSignal): Promise<UpstreamToken> {
    const attemptTimeout = AbortSignal.timeout(this.settings.timeoutMs);
    const combined = AbortSignal.any([signal, attemptTimeout]);
    let status: number | undefined;
    let headers: Record<string, string | string[] | undefined>;
    let text: string;
    // The one place where raw transport failures become typed errors.
    try {
      const response = await request(this.tokenUrl(resource), {
        method: "GET",
        headers: { Metadata: "true" },
        dispatcher: this.dispatcher,
        signal: combined,
      });
      status = response.statusCode;
      headers = response.headers;
      text = await readBounded(response.body, DEFAULT_POD_IDENTITY_CREDENTIAL_OPTIONS.maxResponseBytes);
    } catch (error) {
      // The owner of `signal` (a caller or the single-flight) decided to stop: not a failure of the endpoint.
      if (signal.aborted) throw signal.reason;
      // An oversized answer is no token, whatever its status.
      if (error instanceof BodyTooLarge) {
        throw new PodIdentityAuthenticationError(
          "INVALID_RESPONSE",
          status ?? 0,
          { error: "invalid_response", error_description: "response body too large" },
          `PodIdentityCredential: the token endpoint's answer exceeded ${DEFAULT_POD_IDENTITY_CREDENTIAL_OPTIONS.maxResponseBytes} bytes; nothing was cached.`,
        );
      }
      // A success whose body was cut off mid-way is a broken answer, reported like any unusable body.
      if (status !== undefined && status >= 200 && status < 300 && !attemptTimeout.aborted) {
        throw new PodIdentityAuthenticationError(
          "INVALID_RESPONSE",
          status,
          { error: "invalid_response", error_description: "body cut off" },
          `PodIdentityCredential: the token endpoint answered ${status} but the connection closed before the body was complete; nothing was cached.`,
          { cause: error },
        );
      }
      // Our per-attempt timeout: NMI may be holding a pending assignment or be slow; try again.
      if (attemptTimeout.aborted) {
        throw new PodIdentityUnavailableError(
          "TRANSIENT_FAILURE",
          `PodIdentityCredential: no complete answer from ${this.description} within timeoutMs=${this.settings.timeoutMs}.`,
          { cause: error, statusCode: status },
        );
      }
      const code = errorCode(error);
      // Refused, reset, connect timeout…: NMI restarting or overloaded; worth another attempt.
      if (code !== undefined && TRANSIENT_NETWORK_CODES.has(code)) {
        throw new PodIdentityUnavailableError(
          "TRANSIENT_FAILURE",
          `PodIdentityCredential: request to ${this.description} failed (${code}).`,
          { cause: error, statusCode: status },
        );
      }
      // No route, unknown host, TLS failure…: this is not a pod with an IMDS endpoint; let a chain move on.
      throw new PodIdentityUnavailableError(
        "ENDPOINT_UNREACHABLE",
        `PodIdentityCredential: cannot reach ${this.description} (${code ?? (error as Error)?.message ?? "unknown error"}). ` +
          "Is this running in an Azure pod? Set option endpoint or env AZURE_POD_IDENTITY_AUTHORITY_HOST for another address.",
        { cause: error },
      );
    }
    return this.classify(status, headers, text);
  }

  private classify(status: number, headers: Record<string, string | string[] | undefined>, text: string): UpstreamToken {
    if (status >= 200 && status < 300) return parseTokenResponse(status, text, this.settings.now());
    const body = parseErrorBody(status, text);
    const hint = hintForErrorCode(body.error);
    const detail = `${status} ${body.error}${body.error_description ? `: ${body.error_description}` : ""}`;
    if (status === 403 && NMI_UNAVAILABLE_CODES.has(body.error)) {
      // NMI's own refusal: this pod has no identity here; a chain should move on, retrying cannot help.
      throw new PodIdentityUnavailableError(
        "IDENTITY_UNAVAILABLE",
        `PodIdentityCredential: NMI refused the token request (${detail}).${hint ? ` Likely fix: ${hint}.` : ""}`,
        { statusCode: status, errorBody: body },
      );
    }
    if (RETRYABLE_STATUS.has(status) || status >= 500) {
      // IMDS docs: 404/410 while updating, 429 throttled, 5xx; NMI: 503 while assigning. All may clear up.
      throw new PodIdentityUnavailableError("TRANSIENT_FAILURE", `PodIdentityCredential: the token endpoint answered ${detail}.`, {
        statusCode: status,
        errorBody: body,
        retryAfterMs: parseRetryAfter(headers, this.settings.now()),
      });
    }
    // Any other refusal is definitive: the request itself is wrong (resource, header, identity).
    throw new PodIdentityAuthenticationError(
      "REQUEST_REJECTED",
      status,
      body,
      `PodIdentityCredential: the token endpoint refused the request (${detail}).${hint ? ` Likely fix: ${hint}.` : ""}`,
    );
  }

  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close();
  }
}
