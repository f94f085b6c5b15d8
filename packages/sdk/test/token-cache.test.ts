import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DIAGNOSTICS_CHANNELS } from "../src/diagnostics";
import type { TokenErrorEvent } from "../src/diagnostics";
import { startHarness } from "./helpers/credential";
import type { Harness } from "./helpers/credential";
import { nmiError, tokenBody } from "./helpers/imds-server";

const VAULT = "https://vault.azure.net/.default";
const STORAGE = "https://storage.azure.com/.default";
const HOUR = 3_600_000;

describe("PodIdentityCredential cache", () => {
  let h: Harness;
  beforeEach(async () => {
    h = await startHarness();
  });
  afterEach(async () => {
    await h.close();
  });

  it("serves a cached token without a request, per (identity, resource)", async () => {
    const credential = h.credential();
    const first = await credential.getToken(VAULT);
    const again = await credential.getToken([VAULT]);
    expect(again).toBe(first);
    expect(h.server.requests).toHaveLength(1);
    const storage = await credential.getToken(STORAGE);
    expect(storage.token).toBe("token-2");
    expect(h.server.requests).toHaveLength(2);
    // Another identity is another cache (and a separate instance has its own cache).
    await h.credential({ clientId: "other" }).getToken(VAULT);
    expect(h.server.requests).toHaveLength(3);
  });

  it("evicts the least recently used token beyond maxCachedTokens", async () => {
    const credential = h.credential({ maxCachedTokens: 2 });
    await credential.getToken(VAULT);
    await credential.getToken(STORAGE);
    await credential.getToken(VAULT);
    await credential.getToken("https://third/.default");
    expect(h.server.requests).toHaveLength(3);
    await credential.getToken(VAULT);
    expect(h.server.requests).toHaveLength(3);
    await credential.getToken(STORAGE);
    expect(h.server.requests).toHaveLength(4);
  });

  it("sets refreshAfterTimestamp to min(half-life, expiry - refreshWindowMs)", async () => {
    const credential = h.credential({ refreshWindowMs: 5 * 60_000 });
    h.server.enqueue({ body: tokenBody({ nowMs: h.clock.now(), expiresInSec: 24 * 3600, token: "long" }) });
    const long = await credential.getToken(VAULT);
    expect(long.refreshAfterTimestamp! - h.clock.now()).toBeCloseTo(12 * HOUR, -4);
    h.server.enqueue({ body: tokenBody({ nowMs: h.clock.now(), expiresInSec: 8 * 60, token: "short" }) });
    const short = await credential.getToken(STORAGE);
    expect(short.expiresOnTimestamp - short.refreshAfterTimestamp!).toBe(5 * 60_000);
    // Shorter than the window: half-life, or every call would start a refresh.
    h.server.enqueue({ body: tokenBody({ nowMs: h.clock.now(), expiresInSec: 4 * 60, token: "tiny" }) });
    const tiny = await credential.getToken("https://tiny/.default");
    expect(tiny.refreshAfterTimestamp! - h.clock.now()).toBeGreaterThanOrEqual(2 * 60_000 - 1000);
  });

  it("inside the refresh window serves the cached token at once and refreshes in the background", async () => {
    const credential = h.credential();
    const first = await credential.getToken(VAULT);
    h.clock.advance(first.refreshAfterTimestamp! - h.clock.now() + 1);
    h.server.enqueue({ delayMs: 100, body: tokenBody({ nowMs: h.clock.now(), token: "refreshed" }) });
    const during = await credential.getToken(VAULT);
    expect(during.token).toBe(first.token);
    await h.server.waitForRequests(2);
    // Further callers during the refresh do not start another one.
    await credential.getToken(VAULT);
    await credential.getToken(VAULT);
    await expect.poll(async () => (await credential.getToken(VAULT)).token, { timeout: 2000, interval: 10 }).toBe("refreshed");
    expect(h.server.requests).toHaveLength(2);
  });

  it("a failed background refresh never fails a caller who still has a valid token, and is reported", async () => {
    const events: TokenErrorEvent[] = [];
    const listener = (message: unknown): void => void events.push(message as TokenErrorEvent);
    subscribe(DIAGNOSTICS_CHANNELS.error, listener);
    try {
      const credential = h.credential();
      const first = await credential.getToken(VAULT);
      h.clock.advance(first.refreshAfterTimestamp! - h.clock.now() + 1);
      h.server.enqueue(nmiError(403, "podidentity_no_binding"));
      expect((await credential.getToken(VAULT)).token).toBe(first.token);
      await expect.poll(() => events.length, { timeout: 2000, interval: 5 }).toBe(1);
      expect(events[0]).toMatchObject({ background: true, servedCachedToken: true, code: "IDENTITY_UNAVAILABLE", reason: "podidentity_no_binding" });
      // Still served, without hammering the refusing endpoint: no new refresh during the cooldown…
      for (let i = 0; i < 20; i++) expect((await credential.getToken(VAULT)).token).toBe(first.token);
      expect(h.server.requests).toHaveLength(2);
      // …then the next call tries again (nothing sticky) and the new token replaces the old one.
      h.clock.advance(30_000);
      await expect.poll(async () => (await credential.getToken(VAULT)).token, { timeout: 2000, interval: 10 }).toBe("token-3");
    } finally {
      unsubscribe(DIAGNOSTICS_CHANNELS.error, listener);
    }
  });

  it("an expired token is not served: the caller waits for a new one", async () => {
    const credential = h.credential();
    const first = await credential.getToken(VAULT);
    h.clock.advance(first.expiresOnTimestamp - h.clock.now());
    const second = await credential.getToken(VAULT);
    expect(second.token).toBe("token-2");
    expect(h.server.requests).toHaveLength(2);
  });

  it("claims bypass the cache and the new token replaces the cached one", async () => {
    const credential = h.credential();
    await credential.getToken(VAULT);
    const challenged = await credential.getToken(VAULT, { claims: '{"access_token":{"nbf":{"essential":true}}}' });
    expect(challenged.token).toBe("token-2");
    expect((await credential.getToken(VAULT)).token).toBe("token-2");
    expect(h.server.requests).toHaveLength(2);
  });

  it("keeps no negative state: a failure is followed by a fresh attempt on the next call", async () => {
    const credential = h.credential();
    h.server.enqueue(nmiError(403, "podidentity_no_binding"));
    await expect(credential.getToken(VAULT)).rejects.toMatchObject({ code: "IDENTITY_UNAVAILABLE" });
    expect((await credential.getToken(VAULT)).token).toBe("token-2");
  });
});
