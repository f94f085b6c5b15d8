import { randomUUID } from "node:crypto";
import {
  createLocalJWKSet,
  exportJWK,
  generateKeyPair,
  jwtVerify,
  SignJWT,
  type CryptoKey,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
} from "jose";
import type { Clock } from "../clock";
import { systemClock } from "../clock";

export const DEFAULT_TOKEN_ISSUER_OPTIONS = {
  /** Managed identity tokens live 24 h (the MI back end caches them that long). */
  lifetimeMs: 24 * 60 * 60 * 1000,
  /** Entra back-dates nbf/iat by 5 minutes to absorb clock skew. */
  backdateMs: 5 * 60 * 1000,
} as const;

export interface TokenIssuerOptions {
  clock?: Clock;
  lifetimeMs?: number;
}

export interface IssueTokenRequest {
  /** The resource (`aud`), e.g. https://vault.azure.net. */
  audience: string;
  tenantId: string;
  /** Object (principal) ID of the caller. */
  objectId: string;
  /** Client (application) ID of the caller. */
  appId: string;
  /** "app" for service principals and managed identities. */
  idtyp?: string;
  /** For managed identities: the identity's ARM resource ID (`xms_mirid`). */
  managedIdentityResourceId?: string;
  lifetimeMs?: number;
  /**
   * How the client proved itself, as Entra records it in `appidacr` (v1) / `azpacr` (v2): "secret" → "1",
   * "certificate" → "2" (client assertions, and managed identities, whose tokens carry "2"), "none" → "0" (a
   * public client). Default "certificate".
   */
  clientAuthentication?: ClientAuthentication;
  /** Token format: 1 (`appid`/`appidacr`, issuer sts.windows.net; first-party resources) or 2 (`azp`/`azpacr`). Default 1. */
  version?: 1 | 2;
}

export type ClientAuthentication = "none" | "secret" | "certificate";

/** `appidacr` / `azpacr` values: 0 public client, 1 client secret, 2 certificate. */
const CLIENT_AUTHENTICATION_CLAIM: Record<ClientAuthentication, string> = { none: "0", secret: "1", certificate: "2" };

export interface IssuedToken {
  token: string;
  issuedAtMs: number;
  notBeforeMs: number;
  expiresOnMs: number;
}

export interface VerifiedToken {
  claims: JWTPayload & { tid?: string; oid?: string; appid?: string };
}

/** Why a token was refused; services map these onto their own error codes. */
export class TokenVerificationError extends Error {
  readonly code: "malformed" | "signature" | "expired" | "not_yet_valid" | "audience" | "issuer";

  constructor(code: TokenVerificationError["code"], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TokenVerificationError";
    this.code = code;
  }
}

/**
 * Mints Entra access tokens (RS256 JWT; v1: `iss` https://sts.windows.net/{tid}/, v2: login.microsoftonline.com/{tid}/v2.0) with one
 * signing key, publishes it as a JWKS, and verifies tokens against it on the injectable clock.
 */
export class TokenIssuer {
  readonly kid: string;
  readonly lifetimeMs: number;
  readonly clock: Clock;
  readonly #privateKey: CryptoKey;
  readonly #publicJwk: JWK;
  readonly #jwks: ReturnType<typeof createLocalJWKSet>;

  private constructor(kid: string, privateKey: CryptoKey, publicJwk: JWK, options: TokenIssuerOptions) {
    this.kid = kid;
    this.#privateKey = privateKey;
    this.#publicJwk = publicJwk;
    this.clock = options.clock ?? systemClock;
    this.lifetimeMs = options.lifetimeMs ?? DEFAULT_TOKEN_ISSUER_OPTIONS.lifetimeMs;
    this.#jwks = createLocalJWKSet(this.jwks());
  }

  static async create(options: TokenIssuerOptions = {}): Promise<TokenIssuer> {
    if (options.lifetimeMs !== undefined && !(options.lifetimeMs > 0)) {
      throw new RangeError(`TokenIssuer: lifetimeMs must be > 0, got ${options.lifetimeMs}`);
    }
    const { privateKey, publicKey } = await generateKeyPair("RS256", { modulusLength: 2048 });
    const kid = randomUUID().replaceAll("-", "");
    const publicJwk = { ...(await exportJWK(publicKey)), kid, use: "sig", alg: "RS256", kty: "RSA" };
    return new TokenIssuer(kid, privateKey, publicJwk, options);
  }

  static issuerFor(tenantId: string): string {
    return `https://sts.windows.net/${tenantId}/`;
  }

  /** The issuer of v2 access tokens. */
  static v2IssuerFor(tenantId: string): string {
    return `https://login.microsoftonline.com/${tenantId}/v2.0`;
  }

  jwks(): JSONWebKeySet {
    return { keys: [{ ...this.#publicJwk }] };
  }

  async issue(request: IssueTokenRequest): Promise<IssuedToken> {
    const now = this.clock.now();
    const lifetimeMs = request.lifetimeMs ?? this.lifetimeMs;
    const issuedAtMs = now - DEFAULT_TOKEN_ISSUER_OPTIONS.backdateMs;
    const expiresOnMs = now + lifetimeMs;
    const acr = CLIENT_AUTHENTICATION_CLAIM[request.clientAuthentication ?? "certificate"];
    const v2 = request.version === 2;
    const claims: Record<string, unknown> = {
      tid: request.tenantId,
      oid: request.objectId,
      sub: request.objectId,
      ...(v2 ? { azp: request.appId, azpacr: acr } : { appid: request.appId, appidacr: acr }),
      idtyp: request.idtyp ?? "app",
      ver: v2 ? "2.0" : "1.0",
      uti: randomUUID().replaceAll("-", ""),
    };
    if (request.managedIdentityResourceId !== undefined) claims["xms_mirid"] = request.managedIdentityResourceId;
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: this.kid })
      .setAudience(request.audience)
      .setIssuer(v2 ? TokenIssuer.v2IssuerFor(request.tenantId) : TokenIssuer.issuerFor(request.tenantId))
      .setIssuedAt(Math.floor(issuedAtMs / 1000))
      .setNotBefore(Math.floor(issuedAtMs / 1000))
      .setExpirationTime(Math.floor(expiresOnMs / 1000))
      .sign(this.#privateKey);
    return { token, issuedAtMs, notBeforeMs: issuedAtMs, expiresOnMs: Math.floor(expiresOnMs / 1000) * 1000 };
  }

  /**
   * Verifies signature, audience (any of `audiences`), issuer shape and time on the clock.
   * Throws {@link TokenVerificationError} with a code the calling service translates.
   */
  async verify(token: string, audiences: readonly string[]): Promise<VerifiedToken> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.#jwks, {
        algorithms: ["RS256"],
        currentDate: new Date(this.clock.now()),
      }));
    } catch (error) {
      const code = (error as { code?: string }).code;
      // One branch per jose failure that a service distinguishes; everything else is "malformed".
      if (code === "ERR_JWT_EXPIRED") throw new TokenVerificationError("expired", "token expired", { cause: error });
      if (code === "ERR_JWT_CLAIM_VALIDATION_FAILED" && (error as { claim?: string }).claim === "nbf") {
        throw new TokenVerificationError("not_yet_valid", "token not yet valid", { cause: error });
      }
      if (code === "ERR_JWS_SIGNATURE_VERIFICATION_FAILED" || code === "ERR_JWKS_NO_MATCHING_KEY") {
        throw new TokenVerificationError("signature", "signature verification failed", { cause: error });
      }
      throw new TokenVerificationError("malformed", "token is not a valid JWT", { cause: error });
    }
    const aud = payload.aud;
    const audList = Array.isArray(aud) ? aud : aud === undefined ? [] : [aud];
    if (!audList.some((a) => audiences.includes(a))) {
      throw new TokenVerificationError("audience", `token audience '${audList.join(",")}' is not accepted`);
    }
    const tid = payload["tid"];
    if (typeof tid !== "string" || (payload.iss !== TokenIssuer.issuerFor(tid) && payload.iss !== TokenIssuer.v2IssuerFor(tid))) {
      throw new TokenVerificationError("issuer", `token issuer '${String(payload.iss)}' is not accepted`);
    }
    return { claims: payload };
  }
}
