import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startHarness } from "./helpers/credential";
import type { Harness } from "./helpers/credential";
import { tokenBody } from "./helpers/imds-server";

const VAULT = "https://vault.azure.net/.default";

describe("PodIdentityCredential single-flight", () => {
  let h: Harness;
  beforeEach(async () => {
    h = await startHarness();
  });
  afterEach(async () => {
    await h.close();
  });

  it("1,000 concurrent callers for one key cause exactly one upstream request", async () => {
    const credential = h.credential();
    h.server.enqueue({ delayMs: 50, body: tokenBody({ nowMs: h.clock.now(), token: "shared" }) });
    const tokens = await Promise.all(Array.from({ length: 1000 }, () => credential.getToken(VAULT)));
    expect(h.server.requests).toHaveLength(1);
    expect(new Set(tokens.map((t) => t.token))).toEqual(new Set(["shared"]));
  });

  it("1,000 concurrent callers share the retries too: one request per attempt", async () => {
    const credential = h.credential();
    h.server.enqueue({ status: 429 }, { status: 503 });
    const tokens = await Promise.all(Array.from({ length: 1000 }, () => credential.getToken(VAULT)));
    expect(h.server.requests).toHaveLength(3);
    expect(tokens.every((t) => t.token === "token-3")).toBe(true);
  });

  it("aborting one caller rejects only that caller; the shared request completes for the others", async () => {
    const credential = h.credential();
    h.server.enqueue({ delayMs: 150, body: tokenBody({ nowMs: h.clock.now(), token: "shared" }) });
    const controller = new AbortController();
    const aborted = credential.getToken(VAULT, { abortSignal: controller.signal });
    const others = Promise.all([credential.getToken(VAULT), credential.getToken(VAULT)]);
    await h.server.waitForRequests(1);
    controller.abort();
    await expect(aborted).rejects.toMatchObject({ name: "AbortError" });
    expect((await others).map((t) => t.token)).toEqual(["shared", "shared"]);
    expect(h.server.requests).toHaveLength(1);
  });

  it("requestOptions.timeout bounds one caller's wait without cancelling the shared request", async () => {
    const credential = h.credential();
    h.server.enqueue({ delayMs: 300, body: tokenBody({ nowMs: h.clock.now(), token: "slow" }) });
    const patient = credential.getToken(VAULT);
    const hurried = credential.getToken(VAULT, { requestOptions: { timeout: 50 } });
    await expect(hurried).rejects.toMatchObject({ name: "CredentialUnavailableError", code: "TIMEOUT" });
    expect((await patient).token).toBe("slow");
    expect(h.server.requests).toHaveLength(1);
  });

  it("when every caller gives up, the flight is cancelled and the next caller starts afresh", async () => {
    const credential = h.credential();
    h.server.enqueue({ delayMs: 2000, body: tokenBody({ nowMs: h.clock.now(), token: "abandoned" }) });
    const controller = new AbortController();
    const only = credential.getToken(VAULT, { abortSignal: controller.signal });
    await h.server.waitForRequests(1);
    controller.abort();
    await expect(only).rejects.toMatchObject({ name: "AbortError" });
    const next = await credential.getToken(VAULT);
    expect(next.token).toBe("token-2");
    expect(h.server.requests).toHaveLength(2);
  });

  it("an already-aborted signal rejects without any request", async () => {
    const credential = h.credential();
    await expect(credential.getToken(VAULT, { abortSignal: AbortSignal.abort() })).rejects.toMatchObject({ name: "AbortError" });
    expect(h.server.requests).toHaveLength(0);
  });
});
