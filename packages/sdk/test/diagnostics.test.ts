import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { format } from "node:util";
import { AzureLogger, getLogLevel, setLogLevel } from "@azure/logger";
import type { AzureLogLevel } from "@azure/logger";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DIAGNOSTICS_CHANNELS } from "../src/diagnostics";
import { startHarness } from "./helpers/credential";
import type { Harness } from "./helpers/credential";
import { nmiError, tokenBody } from "./helpers/imds-server";

const VAULT = "https://vault.azure.net/.default";
const SECRET = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.secret-payload.secret-signature";

describe("PodIdentityCredential diagnostics", () => {
  let h: Harness;
  let events: Array<{ channel: string; payload: Record<string, unknown> }>;
  const listeners = Object.values(DIAGNOSTICS_CHANNELS).map((name) => {
    const listener = (payload: unknown): void => void events.push({ channel: name, payload: payload as Record<string, unknown> });
    return [name, listener] as const;
  });
  let logs: string[];
  let previousLevel: AzureLogLevel | undefined;
  const previousLog = AzureLogger.log;

  beforeEach(async () => {
    h = await startHarness();
    events = [];
    logs = [];
    for (const [name, listener] of listeners) subscribe(name, listener);
    previousLevel = getLogLevel();
    setLogLevel("verbose");
    AzureLogger.log = (...args: unknown[]) => void logs.push(format(...args));
  });
  afterEach(async () => {
    for (const [name, listener] of listeners) unsubscribe(name, listener);
    AzureLogger.log = previousLog;
    setLogLevel(previousLevel);
    await h.close();
  });

  it("publishes retry, acquire, refresh and error events with documented payloads and no token", async () => {
    const credential = h.credential({ clientId: "app-1" });
    h.server.enqueue(nmiError(503, "podidentity_pending", { "retry-after": "2" }), {
      body: tokenBody({ nowMs: h.clock.now(), token: SECRET }),
    });
    const token = await credential.getToken(VAULT);
    expect(token.token).toBe(SECRET);

    expect(events.map((e) => e.channel)).toEqual(["podidentity:token:retry", "podidentity:token:acquire"]);
    expect(events[0]!.payload).toEqual({
      resource: "https://vault.azure.net",
      identity: "client_id=app-1",
      source: "imds",
      background: false,
      retry: 1,
      delayMs: 2000,
      elapsedMs: 0,
      statusCode: 503,
      reason: "podidentity_pending",
      retryAfterMs: 2000,
    });
    expect(events[1]!.payload).toEqual({
      resource: "https://vault.azure.net",
      identity: "client_id=app-1",
      source: "imds",
      background: false,
      attempts: 2,
      durationMs: 2000,
      expiresOnTimestamp: token.expiresOnTimestamp,
      refreshAfterTimestamp: token.refreshAfterTimestamp,
    });

    // Background refresh that fails: refresh then error, the caller still served.
    h.clock.advance(token.refreshAfterTimestamp! - h.clock.now() + 1);
    h.server.enqueue(nmiError(403, "podidentity_not_bound"));
    expect((await credential.getToken(VAULT)).token).toBe(SECRET);
    await expect.poll(() => events.length, { timeout: 2000, interval: 5 }).toBe(4);
    expect(events[2]).toMatchObject({
      channel: "podidentity:token:refresh",
      payload: { resource: "https://vault.azure.net", expiresOnTimestamp: token.expiresOnTimestamp },
    });
    expect(events[3]).toMatchObject({
      channel: "podidentity:token:error",
      payload: { background: true, servedCachedToken: true, code: "IDENTITY_UNAVAILABLE", statusCode: 403, reason: "podidentity_not_bound" },
    });

    const serialized = JSON.stringify(events.map((e) => ({ ...e.payload, error: String(e.payload.error ?? "") })));
    expect(serialized).not.toContain(SECRET);
    expect(serialized).not.toContain("secret-payload");
  });

  it("logs through azure:podidentity and never logs a token, on success, refresh or failure", async () => {
    const credential = h.credential();
    h.server.enqueue({ status: 500 }, nmiError(503, "podidentity_pending"), { body: tokenBody({ nowMs: h.clock.now(), token: SECRET }) });
    const token = await credential.getToken(VAULT);
    h.clock.advance(token.refreshAfterTimestamp! - h.clock.now() + 1);
    h.server.enqueue({ body: tokenBody({ nowMs: h.clock.now(), token: `${SECRET}-2` }) });
    await credential.getToken(VAULT);
    await expect.poll(async () => (await credential.getToken(VAULT)).token, { timeout: 2000, interval: 10 }).toBe(`${SECRET}-2`);
    h.server.enqueue({ status: 400, body: { error: "invalid_request", error_description: "bad" } });
    await credential.getToken("https://other/.default").catch(() => undefined);

    expect(logs.some((line) => line.startsWith("azure:podidentity:info"))).toBe(true);
    expect(logs.some((line) => /acquired after 3 attempt/.test(line))).toBe(true);
    expect(logs.some((line) => /attempt 1 for https:\/\/vault\.azure\.net failed \(500\)/.test(line))).toBe(true);
    // The README's troubleshooting table is keyed on NMI's error code: the retry line carries it.
    expect(logs.some((line) => /attempt 2 for https:\/\/vault\.azure\.net failed \(503 podidentity_pending\); retrying in \d+ ms/.test(line))).toBe(true);
    expect(logs.some((line) => line.startsWith("azure:podidentity:warning") && /invalid_request/.test(line))).toBe(true);
    for (const line of logs) {
      expect(line).not.toContain("secret-payload");
      expect(line).not.toContain("secret-signature");
    }
  });
});
