/** The claims `podidentity doctor` shows: who the token is for, who issued it, for which identity, until when. */
export interface TokenClaims {
  aud?: string;
  iss?: string;
  tid?: string;
  oid?: string;
  /** v1 tokens say appid, v2 tokens azp: the client ID of the identity. */
  appid?: string;
  /** The managed identity's ARM resource ID, when Entra ID includes it. */
  xms_mirid?: string;
  /** Expiry, epoch seconds. */
  exp?: number;
}

const SHOWN = ["aud", "iss", "tid", "oid", "xms_mirid"] as const;

/**
 * Reads a JWT's payload WITHOUT verifying it: only to tell the user what they were given. Returns undefined
 * for a token that is not a JWT (opaque tokens exist); never returns or keeps the token itself.
 */
export function decodeJwtClaims(token: string): TokenClaims | undefined {
  const parts = token.split(".");
  if (parts.length !== 3 || parts[1] === undefined) return undefined;
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof payload !== "object" || payload === null) return undefined;
  const raw = payload as Record<string, unknown>;
  const claims: TokenClaims = {};
  for (const name of SHOWN) {
    const value = raw[name];
    if (typeof value === "string") claims[name] = value;
    // aud may be an array in some tokens; the first audience is the one that matters here.
    if (Array.isArray(value) && typeof value[0] === "string") claims[name] = value[0];
  }
  const appid = typeof raw.appid === "string" ? raw.appid : typeof raw.azp === "string" ? raw.azp : undefined;
  if (appid !== undefined) claims.appid = appid;
  if (typeof raw.exp === "number") claims.exp = raw.exp;
  return claims;
}
