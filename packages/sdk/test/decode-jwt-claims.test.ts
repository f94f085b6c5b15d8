import { describe, expect, it } from "vitest";
import { decodeJwtClaims } from "../src/doctor/decode-jwt-claims";
import { fakeJwt } from "./helpers/imds-server";

describe("decodeJwtClaims", () => {
  it("returns the claims doctor shows, appid from v1 appid or v2 azp", () => {
    expect(decodeJwtClaims(fakeJwt({ aud: ["https://vault.azure.net"], tid: "t", oid: "o", azp: "app", exp: 5, secret: "x" }))).toEqual({
      aud: "https://vault.azure.net",
      tid: "t",
      oid: "o",
      appid: "app",
      exp: 5,
    });
  });

  it("returns undefined for opaque or malformed tokens", () => {
    expect(decodeJwtClaims("opaque-token")).toBeUndefined();
    expect(decodeJwtClaims("a.%%%.c")).toBeUndefined();
    expect(decodeJwtClaims(`a.${Buffer.from("42").toString("base64url")}.c`)).toBeUndefined();
  });
});
