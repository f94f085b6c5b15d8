import type { AzureIdentity } from "@podidentity/api";

/** One access token as NMI hands it out (IMDS's fields; times in ms since the epoch). */
export interface AcquiredToken {
  accessToken: string;
  expiresOnMs: number;
  notBeforeMs?: number;
  resource: string;
  tokenType: string;
  clientId: string;
}

/**
 * Where tokens come from for one identity type: IMDS for user-assigned identities, Entra ID for service
 * principals. More than one token means a multi-tenant service principal (primary tenant first), which v1.8
 * answered as a JSON array.
 */
export interface TokenSource {
  acquire(identity: AzureIdentity, resource: string, signal?: AbortSignal): Promise<AcquiredToken[]>;
}

/** The `oid` claim of a JWT access token, read without verifying (NMI only uses it to answer `object_id`). */
export function objectIdOfToken(accessToken: string): string | undefined {
  const payload = accessToken.split(".")[1];
  if (payload === undefined) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { oid?: unknown };
    return typeof claims.oid === "string" ? claims.oid : undefined;
  } catch {
    // Opaque (non-JWT) tokens carry no readable claims.
    return undefined;
  }
}
