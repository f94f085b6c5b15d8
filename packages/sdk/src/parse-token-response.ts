import { PodIdentityAuthenticationError } from "./errors";

/** A token as an upstream answered it, before the cache decides when to refresh it. */
export interface UpstreamToken {
  token: string;
  expiresOnTimestamp: number;
}

function invalid(statusCode: number, description: string): PodIdentityAuthenticationError {
  // The description never quotes the body: a half-valid body may well contain an access_token.
  return new PodIdentityAuthenticationError(
    "INVALID_RESPONSE",
    statusCode,
    { error: "invalid_response", error_description: description },
    `PodIdentityCredential: the token endpoint answered ${statusCode} with ${description}; nothing was cached. ` +
      "Check that the endpoint is IMDS or NMI and that no proxy or sidecar rewrites the answer.",
  );
}

const EPOCH_SECONDS = /^\d+(\.\d+)?$/;

/** Epoch seconds as a number or numeric string, or a date string (App Service style), to ms since epoch. */
function parseExpiresOn(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) && value > 0 ? value * 1000 : undefined;
  if (typeof value !== "string") return undefined;
  const text = value.trim();
  if (text === "") return undefined;
  if (EPOCH_SECONDS.test(text)) return Number(text) * 1000;
  const parsed = Date.parse(text);
  return Number.isNaN(parsed) ? undefined : parsed;
}

function parseExpiresIn(value: unknown, now: number): number | undefined {
  const seconds = typeof value === "number" ? value : typeof value === "string" && EPOCH_SECONDS.test(value.trim()) ? Number(value) : NaN;
  return Number.isFinite(seconds) && seconds > 0 ? now + seconds * 1000 : undefined;
}

/**
 * Parses an IMDS/NMI token answer. Numbers may come as strings (IMDS sends them so), `expires_on` may be
 * epoch seconds or a date, and a JSON array is aad-pod-identity v1.8's answer for a multi-tenant service
 * principal, whose first element is the primary tenant's token.
 */
export function parseTokenResponse(statusCode: number, body: string, now: number): UpstreamToken {
  const trimmed = body.trim();
  if (trimmed === "") throw invalid(statusCode, "an empty body");
  if (trimmed.startsWith("<")) throw invalid(statusCode, "an HTML or XML page instead of JSON");
  let parsed: unknown;
  try {
    parsed = JSON.parse(trimmed);
  } catch {
    throw invalid(statusCode, `a body that is not valid JSON (${trimmed.length} characters, possibly cut off)`);
  }
  if (Array.isArray(parsed)) {
    if (parsed.length === 0) throw invalid(statusCode, "an empty JSON array (no token)");
    parsed = parsed[0];
  }
  if (typeof parsed !== "object" || parsed === null) throw invalid(statusCode, "JSON that is not an object");
  const fields = parsed as Record<string, unknown>;
  const token = fields.access_token;
  if (typeof token !== "string" || token === "") throw invalid(statusCode, "no access_token");

  let expiresOnTimestamp: number | undefined;
  if (fields.expires_on !== undefined && fields.expires_on !== null && fields.expires_on !== "") {
    expiresOnTimestamp = parseExpiresOn(fields.expires_on);
    if (expiresOnTimestamp === undefined) throw invalid(statusCode, "an expires_on that is neither epoch seconds nor a date");
  } else if (fields.expires_in !== undefined) {
    expiresOnTimestamp = parseExpiresIn(fields.expires_in, now);
    if (expiresOnTimestamp === undefined) throw invalid(statusCode, "an expires_in that is not a positive number of seconds");
  } else {
    throw invalid(statusCode, "neither expires_on nor expires_in");
  }
  if (expiresOnTimestamp <= now) {
    throw invalid(statusCode, `a token that expired at ${new Date(expiresOnTimestamp).toISOString()} (check the pod's clock)`);
  }
  return { token, expiresOnTimestamp: Math.floor(expiresOnTimestamp) };
}
