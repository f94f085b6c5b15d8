import type { IncomingMessage, ServerResponse } from "node:http";
import { compactVerify, decodeProtectedHeader, type ProtectedHeaderParameters } from "jose";
import type { Clock } from "../clock";
import { entraError } from "./entra-error";
import { BodyTooLargeError, HttpError, listen, realSleep, requestUrl, sendJson, readBody, type ListenOptions, type RunningServer, type SleepFn, type TlsMaterial } from "./http";
import type { IdentityRegistry, ServicePrincipal } from "./identity-registry";
import { KnownResources, normalizeResource } from "./known-resources";
import type { TokenIssuer } from "./token-issuer";

export const DEFAULT_ENTRA_SERVER_OPTIONS = {
  /** Entra app tokens live 60–90 minutes; a fixed hour keeps tests predictable. */
  tokenLifetimeMs: 60 * 60 * 1000,
  /** Skew Entra tolerates on client assertion times. */
  assertionSkewMs: 5 * 60 * 1000,
  maxBodyBytes: 64 * 1024,
  latencyMs: 0,
} as const;

export interface EntraServerOptions extends ListenOptions {
  tls: TlsMaterial;
  clock: Clock;
  registry: IdentityRegistry;
  tokenIssuer: TokenIssuer;
  knownResources?: KnownResources;
  tokenLifetimeMs?: number;
  latencyMs?: number;
  sleep?: SleepFn;
}

export interface EntraCall {
  method: string;
  path: string;
  status: number;
  atMs: number;
  clientId?: string;
}

const ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const OIDC_SCOPES = new Set(["openid", "profile", "offline_access", "email"]);

/**
 * Microsoft Entra ID for the client-credentials flow (secret or certificate assertion), OIDC
 * discovery, instance discovery and the signing keys, with Entra's error shapes.
 */
export class EntraServer {
  readonly calls: EntraCall[] = [];
  latencyMs: number;
  readonly #options: EntraServerOptions;
  readonly #clock: Clock;
  readonly #sleep: SleepFn;
  readonly #resources: KnownResources;
  #server: RunningServer | undefined;

  constructor(options: EntraServerOptions) {
    this.#options = options;
    this.#clock = options.clock;
    this.#sleep = options.sleep ?? realSleep;
    this.#resources = options.knownResources ?? new KnownResources();
    this.latencyMs = options.latencyMs ?? DEFAULT_ENTRA_SERVER_OPTIONS.latencyMs;
  }

  /** The authority host to give clients (e.g. `authorityHost` of @azure/identity credentials). */
  get url(): string {
    if (!this.#server) throw new Error("EntraServer: not started; call start() first");
    return this.#server.url;
  }

  async start(): Promise<this> {
    this.#server = await listen(
      (req, res) => this.#handle(req, res),
      (error, _req, res) => {
        const e = error instanceof HttpError ? error : entraError(500, "server_error", 90100, String((error as Error)?.message ?? error), this.#clock.now());
        sendJson(res, e.statusCode, e.body, e.headers);
      },
      { host: this.#options.host, port: this.#options.port, tls: this.#options.tls },
    );
    return this;
  }

  async close(): Promise<void> {
    await this.#server?.close();
    this.#server = undefined;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = requestUrl(req);
    const call: EntraCall = { method: req.method ?? "GET", path: url.pathname, status: 0, atMs: this.#clock.now() };
    this.calls.push(call);
    res.on("finish", () => (call.status = res.statusCode));
    await this.#sleep(this.latencyMs);
    const base = `https://${req.headers.host ?? "login.microsoftonline.com"}`;
    const parts = url.pathname.split("/").filter((p) => p.length > 0);
    const tenant = parts[0] ?? "";
    const rest = parts.slice(1).join("/").toLowerCase();

    if (tenant.toLowerCase() === "common" && rest === "discovery/instance") {
      this.#get(req);
      sendJson(res, 200, {
        tenant_discovery_endpoint: `${base}/{tenant}/v2.0/.well-known/openid-configuration`,
        "api-version": "1.1",
        metadata: [{ preferred_network: new URL(base).host, preferred_cache: new URL(base).host, aliases: [new URL(base).host] }],
      });
      return;
    }
    if (rest === "discovery/v2.0/keys" || rest === "discovery/keys") {
      this.#get(req);
      sendJson(res, 200, this.#options.tokenIssuer.jwks());
      return;
    }
    if (rest === "v2.0/.well-known/openid-configuration" || rest === ".well-known/openid-configuration") {
      this.#get(req);
      this.#requireTenant(tenant);
      sendJson(res, 200, openIdConfiguration(base, this.#options.registry.tenantId, rest.startsWith("v2.0")));
      return;
    }
    if (rest === "oauth2/v2.0/token" || rest === "oauth2/token") {
      if (req.method !== "POST") {
        throw entraError(405, "invalid_request", 900561, "The endpoint only accepts POST requests.", this.#clock.now());
      }
      this.#requireTenant(tenant);
      await this.#token(req, res, base, tenant, rest === "oauth2/v2.0/token", call);
      return;
    }
    throw new HttpError(404, { error: "not_found", error_description: `No such endpoint: ${url.pathname}` });
  }

  #get(req: IncomingMessage): void {
    if (req.method !== "GET") throw entraError(405, "invalid_request", 900561, "The endpoint only accepts GET requests.", this.#clock.now());
  }

  #requireTenant(tenant: string): void {
    if (!this.#options.registry.isTenant(tenant)) {
      throw entraError(400, "invalid_request", 90002, `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`, this.#clock.now());
    }
  }

  async #token(req: IncomingMessage, res: ServerResponse, base: string, tenant: string, v2: boolean, call: EntraCall): Promise<void> {
    const now = this.#clock.now();
    let raw: Buffer;
    try {
      raw = await readBody(req, DEFAULT_ENTRA_SERVER_OPTIONS.maxBodyBytes);
    } catch (error) {
      if (error instanceof BodyTooLargeError) throw entraError(413, "invalid_request", 90020, "The request body is too large.", now);
      throw error;
    }
    const isForm = String(req.headers["content-type"] ?? "").toLowerCase().startsWith("application/x-www-form-urlencoded");
    const form = new URLSearchParams(isForm ? raw.toString("utf8") : "");
    const missing = (name: string): HttpError =>
      entraError(400, "invalid_request", 900144, `The request body must contain the following parameter: '${name}'.`, now);

    const grantType = form.get("grant_type");
    if (!grantType) throw missing("grant_type");
    if (grantType !== "client_credentials") {
      throw entraError(400, "unsupported_grant_type", 70003, `The app requested an unsupported grant type '${grantType}'.`, now);
    }
    const basic = parseBasicAuth(req);
    const clientId = form.get("client_id") ?? basic?.clientId;
    if (!clientId) throw missing("client_id");
    call.clientId = clientId;

    const resource = v2 ? this.#resourceFromScope(form.get("scope"), now, missing) : form.get("resource");
    if (!resource) throw missing("resource");
    const principal = this.#options.registry.getServicePrincipal(clientId);
    if (!principal) {
      throw entraError(400, "unauthorized_client", 700016, `Application with identifier '${clientId}' was not found in the directory '${tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`, now);
    }
    if (!this.#resources.has(resource, (id) => this.#options.registry.getServicePrincipal(id) !== undefined)) {
      throw entraError(400, "invalid_resource", 500011, `The resource principal named ${resource} was not found in the tenant named ${tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`, now);
    }

    const secret = form.get("client_secret") ?? basic?.secret;
    const assertion = form.get("client_assertion");
    if (secret !== undefined && secret !== null) {
      if (!principal.secrets.includes(secret)) {
        throw entraError(401, "invalid_client", 7000215, `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${principal.appId}'.`, now);
      }
    } else if (assertion) {
      if (form.get("client_assertion_type") !== ASSERTION_TYPE) {
        throw entraError(400, "invalid_request", 700023, `Invalid client_assertion_type; expected '${ASSERTION_TYPE}'.`, now);
      }
      const audiences = [`${base}/${tenant}/oauth2/v2.0/token`, `${base}/${tenant}/oauth2/token`, `https://login.microsoftonline.com/${tenant}/oauth2/v2.0/token`, `https://login.microsoftonline.com/${tenant}/oauth2/token`];
      await this.#verifyAssertion(assertion, principal, audiences, now);
    } else {
      throw entraError(401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.", now);
    }

    // First-party resources (ARM, Key Vault, …) take v1 tokens whichever endpoint issued them; an app registered
    // as a resource decides by its manifest's requestedAccessTokenVersion.
    const resourceApp = this.#options.registry.getServicePrincipal(normalizeResource(resource).replace(/^api:\/\//, ""));
    const issued = await this.#options.tokenIssuer.issue({
      audience: resource,
      tenantId: principal.tenantId,
      objectId: principal.objectId,
      appId: principal.appId,
      lifetimeMs: this.#options.tokenLifetimeMs ?? DEFAULT_ENTRA_SERVER_OPTIONS.tokenLifetimeMs,
      clientAuthentication: secret !== undefined && secret !== null ? "secret" : "certificate",
      version: resourceApp?.accessTokenVersion ?? 1,
    });
    const expiresIn = Math.floor((issued.expiresOnMs - now) / 1000);
    if (v2) {
      sendJson(res, 200, { token_type: "Bearer", expires_in: expiresIn, ext_expires_in: expiresIn, access_token: issued.token });
    } else {
      sendJson(res, 200, {
        token_type: "Bearer",
        expires_in: String(expiresIn),
        ext_expires_in: String(expiresIn),
        expires_on: String(Math.floor(issued.expiresOnMs / 1000)),
        not_before: String(Math.floor(issued.notBeforeMs / 1000)),
        resource,
        access_token: issued.token,
      });
    }
  }

  #resourceFromScope(scope: string | null, now: number, missing: (name: string) => HttpError): string {
    if (!scope) throw missing("scope");
    const scopes = scope.split(/\s+/).filter((s) => s.length > 0 && !OIDC_SCOPES.has(s.toLowerCase()));
    const only = scopes[0];
    if (scopes.length !== 1 || only === undefined || !only.endsWith("/.default")) {
      throw entraError(400, "invalid_scope", 1002012, `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`, now);
    }
    return only.slice(0, -"/.default".length);
  }

  /** Checks a certificate client assertion as Entra does: registered thumbprint, signature, audience, subject, time. */
  async #verifyAssertion(assertion: string, principal: ServicePrincipal, audiences: string[], now: number): Promise<void> {
    const invalid = (code: number, message: string): HttpError => entraError(401, "invalid_client", code, message, now);
    let header: ProtectedHeaderParameters;
    try {
      header = decodeProtectedHeader(assertion);
    } catch {
      throw invalid(50027, "JWT token is invalid or malformed.");
    }
    const thumbprint = typeof header["x5t#S256"] === "string" ? header["x5t#S256"] : header.x5t;
    const certificate = principal.certificates.find((c) => c.x5t === thumbprint || c.x5tS256 === thumbprint);
    if (!certificate) {
      throw invalid(700027, `The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '${String(thumbprint)}']`);
    }
    if (header.alg !== "RS256" && header.alg !== "PS256") throw invalid(700027, `Client assertion uses unsupported algorithm '${String(header.alg)}'.`);
    let payload: Record<string, unknown>;
    try {
      const verified = await compactVerify(assertion, certificate.publicKey, { algorithms: ["RS256", "PS256"] });
      payload = JSON.parse(new TextDecoder().decode(verified.payload)) as Record<string, unknown>;
    } catch {
      throw invalid(700027, "Client assertion failed signature validation.");
    }
    if (typeof payload["aud"] !== "string" || !audiences.includes(payload["aud"])) {
      throw invalid(700027, `Client assertion audience claim does not match Realm issuer. Expected '${audiences[0]}', found '${String(payload["aud"])}'.`);
    }
    if (payload["iss"] !== principal.appId || payload["sub"] !== principal.appId) {
      throw invalid(700027, "Client assertion contains an invalid issuer or subject; both must be the client ID.");
    }
    const exp = Number(payload["exp"]) * 1000;
    const nbf = payload["nbf"] === undefined ? 0 : Number(payload["nbf"]) * 1000;
    const skew = DEFAULT_ENTRA_SERVER_OPTIONS.assertionSkewMs;
    if (!Number.isFinite(exp) || now > exp + skew || now + skew < nbf) {
      throw invalid(700024, `Client assertion is not within its valid time range. Current time: ${new Date(now).toISOString()}, expiry time of assertion ${Number.isFinite(exp) ? new Date(exp).toISOString() : "missing"}.`);
    }
  }
}

function parseBasicAuth(req: IncomingMessage): { clientId: string; secret: string } | undefined {
  const match = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? "");
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return { clientId: decodeURIComponent(decoded.slice(0, colon)), secret: decodeURIComponent(decoded.slice(colon + 1)) };
}

function openIdConfiguration(base: string, tenantId: string, v2: boolean): Record<string, unknown> {
  const prefix = `${base}/${tenantId}`;
  const oauth = v2 ? `${prefix}/oauth2/v2.0` : `${prefix}/oauth2`;
  return {
    token_endpoint: `${oauth}/token`,
    token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
    jwks_uri: v2 ? `${prefix}/discovery/v2.0/keys` : `${prefix}/discovery/keys`,
    response_modes_supported: ["query", "fragment", "form_post"],
    subject_types_supported: ["pairwise"],
    id_token_signing_alg_values_supported: ["RS256"],
    response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
    scopes_supported: ["openid", "profile", "email", "offline_access"],
    issuer: v2 ? `${prefix}/v2.0` : `https://sts.windows.net/${tenantId}/`,
    request_uri_parameter_supported: false,
    authorization_endpoint: `${oauth}/authorize`,
    device_authorization_endpoint: `${oauth}/devicecode`,
    http_logout_supported: true,
    frontchannel_logout_supported: true,
    end_session_endpoint: `${oauth}/logout`,
    claims_supported: ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "tid", "ver", "oid"],
    tenant_region_scope: "NA",
    cloud_instance_name: "microsoftonline.com",
    cloud_graph_host_name: "graph.windows.net",
    msgraph_host: "graph.microsoft.com",
    rbac_url: "https://pas.windows.net",
  };
}
