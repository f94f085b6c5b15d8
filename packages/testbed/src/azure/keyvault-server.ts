import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Clock } from "../clock";
import { bearerToken } from "./bearer-auth";
import { BodyTooLargeError, HttpError, listen, pathSegments, readBody, realSleep, requestUrl, sendJson, type ListenOptions, type RunningServer, type SleepFn, type TlsMaterial } from "./http";
import { TokenVerificationError, type TokenIssuer } from "./token-issuer";

export type SecretPermission = "get" | "list" | "set";

export const KEY_VAULT_AUDIENCES = ["https://vault.azure.net", "https://vault.azure.net/"] as const;

export const DEFAULT_KEY_VAULT_SERVER_OPTIONS = {
  latencyMs: 0,
  /** Key Vault secrets are limited to 25 KB; the body limit leaves room for the JSON around it. */
  maxBodyBytes: 64 * 1024,
  maxSecretBytes: 25 * 1024,
} as const;

export interface KeyVaultServerOptions extends ListenOptions {
  /** Vault name, as in https://{name}.vault.azure.net. */
  vaultName: string;
  tenantId: string;
  tls: TlsMaterial;
  clock: Clock;
  tokenIssuer: TokenIssuer;
  location?: string;
  latencyMs?: number;
  sleep?: SleepFn;
}

interface SecretVersion {
  version: string;
  value: string;
  contentType: string | undefined;
  tags: Record<string, string>;
  createdMs: number;
}

// Key Vault used 7.x versions and moved to dated ones (current SDKs send e.g. 2025-07-01).
const API_VERSION_PATTERN = /^(\d+\.\d+|\d{4}-\d{2}-\d{2})(-preview(\.\d+)?)?$/;
const SECRET_NAME = /^[0-9a-zA-Z-]{1,127}$/;

/**
 * One Key Vault's secrets endpoint with the bearer challenge, JWT checks and an access policy
 * per object ID, answering in Key Vault's error shape `{"error":{"code","message","innererror"?}}`.
 */
export class KeyVaultServer {
  readonly vaultName: string;
  readonly calls: Array<{ method: string; path: string; status: number; atMs: number }> = [];
  latencyMs: number;
  readonly #options: KeyVaultServerOptions;
  readonly #secrets = new Map<string, SecretVersion[]>();
  readonly #policies = new Map<string, Set<SecretPermission>>();
  readonly #sleep: SleepFn;
  #server: RunningServer | undefined;

  constructor(options: KeyVaultServerOptions) {
    if (!/^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$/.test(options.vaultName)) {
      throw new TypeError(`KeyVaultServer: vaultName "${options.vaultName}" must be 3-24 letters, digits or '-', starting with a letter`);
    }
    this.#options = options;
    this.vaultName = options.vaultName;
    this.#sleep = options.sleep ?? realSleep;
    this.latencyMs = options.latencyMs ?? DEFAULT_KEY_VAULT_SERVER_OPTIONS.latencyMs;
  }

  /** The vault URL for SecretClient (loopback; use `https://{vaultName}.vault.azure.net` inside a namespace). */
  get url(): string {
    if (!this.#server) throw new Error("KeyVaultServer: not started; call start() first");
    return this.#server.url;
  }

  async start(): Promise<this> {
    this.#server = await listen(
      (req, res) => this.#handle(req, res),
      (error, _req, res) => {
        const e = error instanceof HttpError ? error : kvError(500, "InternalError", String((error as Error)?.message ?? error));
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

  /** Sets the access policy of an object ID (replacing its previous permissions). */
  setAccessPolicy(objectId: string, permissions: readonly SecretPermission[]): void {
    this.#policies.set(objectId.toLowerCase(), new Set(permissions));
  }

  removeAccessPolicy(objectId: string): void {
    this.#policies.delete(objectId.toLowerCase());
  }

  /** The secret permissions of an object ID (empty when it has no policy). */
  accessPolicy(objectId: string): SecretPermission[] {
    return [...(this.#policies.get(objectId.toLowerCase()) ?? [])];
  }

  /** Every access policy, as ARM lists them. */
  accessPolicies(): Array<{ tenantId: string; objectId: string; permissions: { secrets: SecretPermission[] } }> {
    return [...this.#policies.entries()].map(([objectId, permissions]) => ({
      tenantId: this.#options.tenantId,
      objectId,
      permissions: { secrets: [...permissions] },
    }));
  }

  /** Seeds a secret without going through HTTP; returns its version. */
  putSecret(name: string, value: string, options: { contentType?: string; tags?: Record<string, string> } = {}): string {
    const version = randomBytes(16).toString("hex");
    const versions = this.#secrets.get(name.toLowerCase()) ?? [];
    versions.push({ version, value, contentType: options.contentType, tags: options.tags ?? {}, createdMs: this.#options.clock.now() });
    this.#secrets.set(name.toLowerCase(), versions);
    return version;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = requestUrl(req);
    const method = req.method ?? "GET";
    const call = { method, path: url.pathname, status: 0, atMs: this.#options.clock.now() };
    this.calls.push(call);
    res.on("finish", () => (call.status = res.statusCode));
    await this.#sleep(this.latencyMs);
    const body = method === "PUT" ? await this.#readBody(req) : undefined;

    const apiVersion = url.searchParams.get("api-version");
    if (!apiVersion) throw kvError(400, "BadParameter", "The 'api-version' query parameter is missing.");
    if (!API_VERSION_PATTERN.test(apiVersion)) throw kvError(400, "BadParameter", `The specified version (${apiVersion}) is not recognized. Consider using the latest supported version (7.6).`);

    const caller = await this.#authenticate(req);
    const parts = pathSegments(url.pathname);
    if (!parts || parts[0]?.toLowerCase() !== "secrets" || parts.length > 3) throw kvError(404, "NotFound", `The requested path ${url.pathname} was not found.`);

    if (parts.length === 1) {
      if (method !== "GET") throw methodNotAllowed(method);
      this.#authorize(caller, "list");
      sendJson(res, 200, { value: [...this.#secrets.keys()].map((name) => this.#secretItem(req, this.#latest(name)!, name)), nextLink: null });
      return;
    }
    const name = parts[1]!;
    if (!SECRET_NAME.test(name)) throw kvError(400, "BadParameter", `The request URI contains an invalid name: ${name}`);
    if (parts.length === 3 && parts[2]!.toLowerCase() === "versions") {
      if (method !== "GET") throw methodNotAllowed(method);
      this.#authorize(caller, "list");
      const versions = this.#secrets.get(name.toLowerCase()) ?? [];
      sendJson(res, 200, { value: versions.map((v) => this.#secretItem(req, v, name, true)), nextLink: null });
      return;
    }
    if (method === "GET") {
      this.#authorize(caller, "get");
      const version = parts[2];
      const found = version ? this.#secrets.get(name.toLowerCase())?.find((v) => v.version === version.toLowerCase()) : this.#latest(name);
      if (!found) {
        throw kvError(404, "SecretNotFound", `A secret with (name/id) ${name}${version ? `/${version}` : ""} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`);
      }
      sendJson(res, 200, { value: found.value, ...this.#secretItem(req, found, name, true) });
      return;
    }
    if (method === "PUT" && parts.length === 2) {
      this.#authorize(caller, "set");
      if (body === null || typeof body !== "object" || Array.isArray(body) || typeof (body as { value?: unknown }).value !== "string") {
        throw kvError(400, "BadParameter", "Property 'value' is required and must be a string.");
      }
      const input = body as { value: string; contentType?: unknown; tags?: unknown };
      if (Buffer.byteLength(input.value) > DEFAULT_KEY_VAULT_SERVER_OPTIONS.maxSecretBytes) {
        throw kvError(400, "BadParameter", "Secret value exceeds the maximum size of 25 KB.");
      }
      const version = this.putSecret(name, input.value, {
        contentType: typeof input.contentType === "string" ? input.contentType : undefined,
        tags: isStringMap(input.tags) ? input.tags : {},
      });
      const stored = this.#secrets.get(name.toLowerCase())!.find((v) => v.version === version)!;
      sendJson(res, 200, { value: stored.value, ...this.#secretItem(req, stored, name, true) });
      return;
    }
    throw methodNotAllowed(method);
  }

  async #readBody(req: IncomingMessage): Promise<unknown> {
    let raw: Buffer;
    try {
      raw = await readBody(req, DEFAULT_KEY_VAULT_SERVER_OPTIONS.maxBodyBytes);
    } catch (error) {
      if (error instanceof BodyTooLargeError) throw kvError(413, "RequestEntityTooLarge", `The request body exceeds ${error.limitBytes} bytes.`);
      throw error;
    }
    if (raw.length === 0) return undefined;
    try {
      return JSON.parse(raw.toString("utf8"));
    } catch {
      throw kvError(400, "BadParameter", "The request body is not valid JSON.");
    }
  }

  async #authenticate(req: IncomingMessage): Promise<{ oid: string; appid: string; iss: string }> {
    const challenge = {
      "www-authenticate": `Bearer authorization="https://login.microsoftonline.com/${this.#options.tenantId}", resource="https://vault.azure.net"`,
    };
    const token = bearerToken(req);
    if (!token) throw kvError(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.", challenge);
    try {
      const { claims } = await this.#options.tokenIssuer.verify(token, KEY_VAULT_AUDIENCES);
      if (claims.tid?.toLowerCase() !== this.#options.tenantId.toLowerCase()) {
        throw kvError(401, "Unauthorized", `AKV10032: Invalid issuer. Expected one of https://sts.windows.net/${this.#options.tenantId}/, found ${String(claims.iss)}.`, challenge);
      }
      return { oid: String(claims.oid ?? ""), appid: String(claims.appid ?? ""), iss: String(claims.iss ?? "") };
    } catch (error) {
      if (!(error instanceof TokenVerificationError)) throw error;
      // One Key Vault message per reason a token is refused; the challenge lets the client fetch a new one.
      const messages: Record<TokenVerificationError["code"], string> = {
        expired: "AKV10022: Invalid audience or token expired.",
        not_yet_valid: "AKV10022: Token is not yet valid.",
        audience: "AKV10022: Invalid audience. Expected https://vault.azure.net.",
        issuer: `AKV10032: Invalid issuer. Expected one of https://sts.windows.net/${this.#options.tenantId}/.`,
        signature: "AKV10020: Token signature is invalid.",
        malformed: "AKV10020: Invalid token.",
      };
      throw kvError(401, "Unauthorized", messages[error.code], challenge);
    }
  }

  #authorize(caller: { oid: string; appid: string; iss: string }, permission: SecretPermission): void {
    if (this.#policies.get(caller.oid.toLowerCase())?.has(permission)) return;
    throw kvError(
      403,
      "Forbidden",
      `The user, group or application 'appid=${caller.appid};oid=${caller.oid};iss=${caller.iss}' does not have secrets ${permission} permission on key vault '${this.vaultName};location=${this.#options.location ?? "eastus"}'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287`,
      {},
      { code: "AccessDenied" },
    );
  }

  #latest(name: string): SecretVersion | undefined {
    return this.#secrets.get(name.toLowerCase())?.at(-1);
  }

  #secretItem(req: IncomingMessage, v: SecretVersion, name: string, withVersion = false): Record<string, unknown> {
    const base = `https://${req.headers.host ?? `${this.vaultName}.vault.azure.net`}`;
    const created = Math.floor(v.createdMs / 1000);
    const item: Record<string, unknown> = {
      id: withVersion ? `${base}/secrets/${name}/${v.version}` : `${base}/secrets/${name}`,
      attributes: { enabled: true, created, updated: created, recoveryLevel: "Recoverable+Purgeable", recoverableDays: 90 },
      tags: v.tags,
    };
    if (v.contentType !== undefined) item["contentType"] = v.contentType;
    return item;
  }
}

function kvError(status: number, code: string, message: string, headers: Record<string, string> = {}, innererror?: { code: string }): HttpError {
  const error: Record<string, unknown> = { code, message };
  if (innererror) error["innererror"] = innererror;
  return new HttpError(status, { error }, headers);
}

function methodNotAllowed(method: string): HttpError {
  return kvError(405, "MethodNotAllowed", `The HTTP method '${method}' is not supported for this resource.`);
}

function isStringMap(value: unknown): value is Record<string, string> {
  return value !== null && typeof value === "object" && !Array.isArray(value) && Object.values(value).every((v) => typeof v === "string");
}
