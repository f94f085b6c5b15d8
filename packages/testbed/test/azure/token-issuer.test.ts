import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import { describe, expect, it } from "vitest";
import { ManualClock, TokenIssuer, TokenVerificationError } from "../../src/index";

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";

describe("TokenIssuer", () => {
  it("mints RS256 v1 access tokens published in its JWKS, with a 24 h default lifetime", async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const issuer = await TokenIssuer.create({ clock });
    const issued = await issuer.issue({ audience: "https://vault.azure.net", tenantId: TENANT, objectId: "oid-1", appId: "app-1" });
    expect(decodeProtectedHeader(issued.token)).toMatchObject({ alg: "RS256", typ: "JWT", kid: issuer.kid });
    const { payload } = await jwtVerify(issued.token, createLocalJWKSet(issuer.jwks()), { currentDate: new Date(clock.now()) });
    expect(payload).toMatchObject({ aud: "https://vault.azure.net", iss: `https://sts.windows.net/${TENANT}/`, tid: TENANT, oid: "oid-1", appid: "app-1" });
    expect(payload.exp).toBe(1_700_000_000 + 24 * 3600);
    expect(payload.nbf).toBe(payload.iat);
    expect(issued.expiresOnMs).toBe((1_700_000_000 + 24 * 3600) * 1000);
  });

  it("verifies on its clock and names why a token is refused", async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const issuer = await TokenIssuer.create({ clock, lifetimeMs: 60_000 });
    const { token } = await issuer.issue({ audience: "https://management.azure.com/", tenantId: TENANT, objectId: "o", appId: "a" });
    await expect(issuer.verify(token, ["https://management.azure.com/"])).resolves.toMatchObject({ claims: { oid: "o" } });
    await expect(issuer.verify(token, ["https://vault.azure.net"])).rejects.toMatchObject({ code: "audience" });
    await expect(issuer.verify("not.a.jwt", ["x"])).rejects.toBeInstanceOf(TokenVerificationError);
    const other = await TokenIssuer.create({ clock });
    await expect(other.verify(token, ["https://management.azure.com/"])).rejects.toMatchObject({ code: "signature" });
    clock.advance(61_000);
    await expect(issuer.verify(token, ["https://management.azure.com/"])).rejects.toMatchObject({ code: "expired" });
  });

  it("refuses a non-positive lifetime", async () => {
    await expect(TokenIssuer.create({ lifetimeMs: 0 })).rejects.toThrow(/TokenIssuer: lifetimeMs/);
  });
});
