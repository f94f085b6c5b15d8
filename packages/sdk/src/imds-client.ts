import { Agent as HttpAgent, request as httpRequest } from "node:http";
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
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

/** An http.Agent for an http:// endpoint, an https.Agent for an https:// one. */
export type ImdsAgent = HttpAgent;

export interface ImdsClientSettings {
  endpoint: URL;
  selector: IdentitySelector;
  /** Connect timeout per attempt once the endpoint has answered at least once. */
  connectTimeoutMs: number;
  /** Connect timeout per attempt until the endpoint has answered once; its expiry means "nothing is there". */
  firstContactConnectTimeoutMs: number;
  /** Until the first answer, refused connections are retried this long in a pod, and not at all elsewhere. */
  refusedMaxElapsedMs: number;
  /** Env KUBERNETES_SERVICE_HOST was set at construction: a refused connection may be NMI restarting. */
  inPod: boolean;
  timeoutMs: number;
  now: () => number;
  /** When absent, the client owns a private Agent: the global agent (and any proxy it may use) never applies. */
  agent?: ImdsAgent;
}

/** Failures of the transport that a later attempt may not see (IMDS docs: "timeout → exponential backoff"). */
const TRANSIENT_NETWORK_CODES = new Set([
  "ECONNREFUSED", // NMI restarting on this node
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EAI_AGAIN",
]);

/** Until the endpoint has answered once, these mean nothing is there (a laptop, a CI runner): no retry. */
const NOTHING_THERE_CODES = new Set(["ETIMEDOUT", "ENETUNREACH", "EHOSTUNREACH"]);

const RETRYABLE_STATUS = new Set([404, 408, 410, 429]);

class BodyTooLarge extends Error {}

function errorCode(error: unknown): string | undefined {
  for (let e = error; e !== null && typeof e === "object"; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}

/** The error Node's net module gives when the OS gives up connecting; ours gives up sooner. */
function connectTimeoutError(url: URL, ms: number): Error {
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  return Object.assign(new Error(`connect ETIMEDOUT ${url.hostname}:${port} (no connection within ${ms} ms)`), {
    code: "ETIMEDOUT",
    syscall: "connect",
  });
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

async function readBounded(body: IncomingMessage, limit: number): Promise<string> {
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
  private readonly agent: ImdsAgent;
  private readonly ownsAgent: boolean;
  /**
   * Set by the first HTTP answer of any status. Before it, a failure to connect may mean there is no endpoint
   * at all (off-cluster), and a chain must move on quickly; after it, the endpoint exists and is waited for.
   */
  private answered = false;

  constructor(private readonly settings: ImdsClientSettings) {
    this.description = settings.endpoint.href;
    this.ownsAgent = settings.agent === undefined;
    const Agent = settings.endpoint.protocol === "https:" ? HttpsAgent : HttpAgent;
    this.agent = settings.agent ?? new Agent({ keepAlive: true, maxSockets: 16 });
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
    const firstContact = !this.answered;
    let status: number | undefined;
    let headers: IncomingHttpHeaders;
    let text: string;
    // The one place where raw transport failures become typed errors.
    try {
      const response = await this.send(new URL(this.tokenUrl(resource)), combined, firstContact);
      status = response.statusCode ?? 0;
      headers = response.headers;
      this.answered = true;
      text = await readBounded(response, DEFAULT_POD_IDENTITY_CREDENTIAL_OPTIONS.maxResponseBytes);
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
      if (firstContact && status === undefined && code !== undefined) {
        // Never answered, and no connection within the first-contact timeout or no route: nothing is there
        // (a laptop, a CI runner where 169.254.169.254 is dropped). A chain must move on now, not in 90 s.
        if (NOTHING_THERE_CODES.has(code)) throw this.unreachable(code, error);
        if (code === "ECONNREFUSED") {
          // Off-cluster a refused port is nothing listening. In a pod it is NMI restarting: its interception
          // stays while it is down, so the port refuses until it is back; wait for it, briefly.
          if (!this.settings.inPod) throw this.unreachable(code, error);
          throw new PodIdentityUnavailableError(
            "TRANSIENT_FAILURE",
            `PodIdentityCredential: request to ${this.description} failed (${code}); it has not answered yet (NMI restarting?).`,
            { cause: error, retryWithin: { ms: this.settings.refusedMaxElapsedMs, option: "firstContact.refusedMaxElapsedMs" } },
          );
        }
      }
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

  private unreachable(code: string, cause: unknown): PodIdentityUnavailableError {
    const why =
      code === "ETIMEDOUT"
        ? `no connection within firstContact.connectTimeoutMs=${this.settings.firstContactConnectTimeoutMs}`
        : code === "ECONNREFUSED"
          ? "connection refused, and env KUBERNETES_SERVICE_HOST is not set, so this is not NMI restarting in a pod"
          : "no route to it";
    return new PodIdentityUnavailableError(
      "ENDPOINT_UNREACHABLE",
      `PodIdentityCredential: nothing answers at ${this.description} (${code}: ${why}). Is this running in an Azure pod? ` +
        "Set option endpoint or env AZURE_POD_IDENTITY_AUTHORITY_HOST for another address.",
      { cause },
    );
  }

  /** One GET; resolves with the response once its headers arrive. Never through a proxy (a private Agent). */
  private send(url: URL, signal: AbortSignal, firstContact: boolean): Promise<IncomingMessage> {
    const connectTimeoutMs = firstContact
      ? Math.min(this.settings.firstContactConnectTimeoutMs, this.settings.connectTimeoutMs)
      : this.settings.connectTimeoutMs;
    const request = url.protocol === "https:" ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(url, { method: "GET", headers: { Metadata: "true" }, agent: this.agent, signal }, resolve);
      req.on("error", reject);
      req.once("socket", (socket) => {
        // A kept-alive socket is connected already; a new one gets the connect timeout (DNS lookup included).
        if (!socket.connecting) return;
        const timer = setTimeout(() => req.destroy(connectTimeoutError(url, connectTimeoutMs)), connectTimeoutMs);
        const clear = (): void => clearTimeout(timer);
        socket.once("connect", clear);
        socket.once("close", clear);
      });
      req.end();
    });
  }

  private classify(status: number, headers: IncomingHttpHeaders, text: string): UpstreamToken {
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
    if (this.ownsAgent) this.agent.destroy();
  }
}
