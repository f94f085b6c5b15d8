import type { IncomingMessage } from "node:http";
import { armError } from "./arm-error";
import { bearerToken } from "./bearer-auth";
import { TokenVerificationError, type TokenIssuer } from "./token-issuer";

/** Audiences ARM accepts, exactly as its error message lists them. */
export const ARM_AUDIENCES = [
  "https://management.core.windows.net/",
  "https://management.core.windows.net",
  "https://management.azure.com/",
  "https://management.azure.com",
] as const;

/**
 * ARM's bearer check: a missing header, a token ARM cannot validate, an expired token and a token
 * for another audience each get ARM's own error code, with the challenge pointing at the tenant.
 */
export async function authenticateArmRequest(req: IncomingMessage, tokenIssuer: TokenIssuer, tenantId: string): Promise<{ objectId: string }> {
  const challenge = (description: string): Record<string, string> => ({
    "www-authenticate": `Bearer authorization_uri="https://login.windows.net/${tenantId}", error="invalid_token", error_description="${description}"`,
  });
  const token = bearerToken(req);
  if (!token) {
    throw armError(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.", {
      headers: challenge("The authentication failed because of missing 'Authorization' header."),
    });
  }
  try {
    const { claims } = await tokenIssuer.verify(token, ARM_AUDIENCES);
    // ARM throttles per principal: the caller's object ID.
    return { objectId: typeof claims.oid === "string" ? claims.oid : "unknown" };
  } catch (error) {
    if (!(error instanceof TokenVerificationError)) throw error;
    const headers = challenge("The access token is invalid.");
    switch (error.code) {
      case "expired":
        throw armError(401, "ExpiredAuthenticationToken", "The access token expiry UTC time is earlier than current UTC time.", { headers });
      case "audience":
        throw armError(401, "InvalidAuthenticationTokenAudience", `The access token has been obtained for wrong audience or resource. It should exactly match with one of the allowed audiences '${ARM_AUDIENCES.join("','")}'.`, { headers });
      default:
        throw armError(401, "InvalidAuthenticationToken", "The access token is invalid.", { headers });
    }
  }
}
