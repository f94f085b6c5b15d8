import { AuthenticationError } from "@azure/identity";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_POD_IDENTITY_CREDENTIAL_OPTIONS } from "../src/pod-identity-credential-options";
import { startHarness } from "./helpers/credential";
import type { Harness } from "./helpers/credential";
import type { ScriptedResponse } from "./helpers/imds-server";

const VAULT = "https://vault.azure.net/.default";

describe("PodIdentityCredential token responses", () => {
  let h: Harness;
  let nowSec: number;
  beforeEach(async () => {
    h = await startHarness();
    nowSec = Math.floor(h.clock.now() / 1000);
  });
  afterEach(async () => {
    await h.close();
  });

  it.each<[string, () => Record<string, unknown>, () => number]>([
    ["expires_on as a numeric string (IMDS)", () => ({ access_token: "t", expires_on: String(nowSec + 3600) }), () => (nowSec + 3600) * 1000],
    ["expires_on as a number", () => ({ access_token: "t", expires_on: nowSec + 1800 }), () => (nowSec + 1800) * 1000],
    [
      "expires_on as a date string",
      () => ({ access_token: "t", expires_on: new Date((nowSec + 7200) * 1000).toUTCString() }),
      () => (nowSec + 7200) * 1000,
    ],
    ["expires_on as an ISO date", () => ({ access_token: "t", expires_on: new Date((nowSec + 600) * 1000).toISOString() }), () => (nowSec + 600) * 1000],
    ["expires_in only, as a string", () => ({ access_token: "t", expires_in: "3599" }), () => h.clock.now() + 3_599_000],
    ["expires_in only, as a number", () => ({ access_token: "t", expires_in: 60 }), () => h.clock.now() + 60_000],
  ])("parses %s", async (_, body, expected) => {
    h.server.enqueue({ body: body() });
    const token = await h.credential().getToken(VAULT);
    expect(token).toMatchObject({ token: "t", expiresOnTimestamp: expected(), tokenType: "Bearer" });
  });

  it("takes the first (primary) token of a JSON array, as v1.8 answers for multi-tenant service principals", async () => {
    h.server.enqueue({
      body: [
        { access_token: "primary", expires_on: String(nowSec + 3600) },
        { access_token: "auxiliary", expires_on: String(nowSec + 3600) },
      ],
    });
    expect((await h.credential().getToken(VAULT)).token).toBe("primary");
  });

  const bad: Array<[string, ScriptedResponse, RegExp]> = [
    ["no access_token", { body: { expires_on: "1" } }, /no access_token/],
    ["an unparsable expires_on", { body: { access_token: "secret-token", expires_on: "soon" } }, /expires_on/],
    ["an unparsable expires_in", { body: { access_token: "secret-token", expires_in: "forever" } }, /expires_in/],
    ["no expiry at all", { body: { access_token: "secret-token" } }, /neither expires_on nor expires_in/],
    ["an already expired token", { body: { access_token: "secret-token", expires_on: "1000" } }, /expired/],
    ["an empty JSON array", { body: [] }, /empty JSON array/],
    ["an HTML page", { headers: { "content-type": "text/html" }, body: "<html><body>Proxy login</body></html>" }, /HTML/],
    ["a truncated JSON body", { body: '{"access_token":"secret-token","expires_on":"17' }, /not valid JSON/],
    ["a body cut off by a closed connection", { body: { access_token: "secret-token", expires_in: "3600", pad: "x".repeat(2000) }, destroy: "mid-body" }, /closed before the body was complete/],
    ["an empty body", { body: "" }, /empty body/],
    ["JSON that is not an object", { body: "42" }, /not an object/],
    ["an oversized body", { body: "x".repeat(DEFAULT_POD_IDENTITY_CREDENTIAL_OPTIONS.maxResponseBytes + 10) }, /exceeded/],
  ];

  it.each(bad)("rejects %s with AuthenticationError INVALID_RESPONSE and caches nothing", async (_, response, message) => {
    const credential = h.credential();
    h.server.enqueue(response);
    let error: unknown;
    await credential.getToken(VAULT).catch((e: unknown) => (error = e));
    expect(error).toBeInstanceOf(AuthenticationError);
    expect(error).toMatchObject({ code: "INVALID_RESPONSE" });
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain("secret-token");
    expect(h.server.requests).toHaveLength(1);
    // Nothing cached: the next call asks again and gets a good token.
    expect((await credential.getToken(VAULT)).token).toBe("token-2");
  });
});
