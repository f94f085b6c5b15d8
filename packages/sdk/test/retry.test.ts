import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { AuthenticationError, CredentialUnavailableError } from "@azure/identity";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { PodIdentityAuthenticationError, PodIdentityUnavailableError } from "../src/errors";
import { startHarness } from "./helpers/credential";
import type { Harness } from "./helpers/credential";
import { nmiError } from "./helpers/imds-server";

const VAULT = "https://vault.azure.net/.default";
const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);

async function rejection(promise: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  try {
    await promise;
  } catch (error) {
    return error as Error & Record<string, unknown>;
  }
  throw new Error("expected a rejection");
}

describe("PodIdentityCredential retries", () => {
  let h: Harness;
  beforeEach(async () => {
    h = await startHarness();
  });
  afterEach(async () => {
    await h.close();
  });

  it.each([404, 408, 410, 429, 500, 502, 503, 504])("retries a %i with jittered backoff, then succeeds", async (status) => {
    h.server.enqueue({ status, body: { error: "x", error_description: "y" } });
    const token = await h.credential().getToken(VAULT);
    expect(token.token).toBe("token-2");
    expect(h.server.requests).toHaveLength(2);
    // random() = 0.5: 3/4 of the 500 ms initial delay.
    expect(h.clock.sleeps).toEqual([375]);
  });

  it("retries a 429 without Retry-After (which @azure/identity does not)", async () => {
    h.server.enqueue({ status: 429 }, { status: 429 });
    expect((await h.credential().getToken(VAULT)).token).toBe("token-3");
    expect(h.clock.sleeps).toEqual([375, 750]);
  });

  it("honours Retry-After in seconds", async () => {
    h.server.enqueue(nmiError(503, "podidentity_pending", { "retry-after": "7" }));
    expect((await h.credential().getToken(VAULT)).token).toBe("token-2");
    expect(h.clock.sleeps).toEqual([7000]);
  });

  it("honours Retry-After as an HTTP date", async () => {
    const at = new Date(h.clock.now() + 12_000).toUTCString();
    h.server.enqueue({ status: 429, headers: { "retry-after": at } });
    expect((await h.credential().getToken(VAULT)).token).toBe("token-2");
    expect(h.clock.sleeps).toEqual([12_000]);
  });

  it("retries NMI's 503 codes (pending, pod unknown, upstream unavailable)", async () => {
    h.server.enqueue(
      nmiError(503, "podidentity_pod_unknown", { "retry-after": "1" }),
      nmiError(503, "podidentity_pending", { "retry-after": "2" }),
      nmiError(503, "podidentity_upstream_unavailable", { "retry-after": "3" }),
    );
    expect((await h.credential().getToken(VAULT)).token).toBe("token-4");
    expect(h.clock.sleeps).toEqual([1000, 2000, 3000]);
  });

  it("keeps retrying a 410 for at least 70 s, even past maxRetries", async () => {
    h.server.fallback = () => ({ status: 410, body: { error: "gone", error_description: "updating" } });
    const error = await rejection(h.credential({ retry: { maxRetries: 2 } }).getToken(VAULT));
    expect(error).toBeInstanceOf(PodIdentityUnavailableError);
    expect(error.code).toBe("RETRY_EXHAUSTED");
    expect((error.cause as PodIdentityUnavailableError).statusCode).toBe(410);
    // The last attempt started at >= 70 s after the first.
    expect(sum(h.clock.sleeps)).toBeGreaterThanOrEqual(70_000);
    expect(h.server.requests.length).toBeGreaterThan(3);
  });

  it("uses the whole default 90 s budget, then fails with RETRY_EXHAUSTED and the last cause", async () => {
    h.server.fallback = () => ({ status: 500 });
    const error = await rejection(h.credential().getToken(VAULT));
    expect(error).toBeInstanceOf(CredentialUnavailableError);
    expect(error.code).toBe("RETRY_EXHAUSTED");
    expect(sum(h.clock.sleeps)).toBe(90_000);
    expect(error.cause).toMatchObject({ code: "TRANSIENT_FAILURE", statusCode: 500 });
    expect(error.message).toMatch(/retry\.maxElapsedMs=90000/);
  });

  it("stops after retry.maxRetries", async () => {
    h.server.fallback = () => ({ status: 502 });
    const error = await rejection(h.credential({ retry: { maxRetries: 2 } }).getToken(VAULT));
    expect(error.code).toBe("RETRY_EXHAUSTED");
    expect(h.server.requests).toHaveLength(3);
  });

  it("gives up at once when Retry-After exceeds the remaining budget", async () => {
    h.server.enqueue({ status: 503, headers: { "retry-after": "600" } });
    const error = await rejection(h.credential().getToken(VAULT));
    expect(error.code).toBe("RETRY_EXHAUSTED");
    expect(h.server.requests).toHaveLength(1);
  });

  it.each([
    [400, "invalid_request"],
    [400, "invalid_resource"],
    [401, "unknown_source"],
    [403, "AADSTS700016"],
    [405, "method_not_allowed"],
  ])("does not retry a %i %s: AuthenticationError with status and parsed body", async (status, code) => {
    h.server.enqueue({ status, body: { error: code, error_description: "refused" } });
    const error = await rejection(h.credential().getToken(VAULT));
    expect(error).toBeInstanceOf(AuthenticationError);
    expect(error).toBeInstanceOf(PodIdentityAuthenticationError);
    expect(error).toMatchObject({ code: "REQUEST_REJECTED", statusCode: status, errorResponse: { error: code, errorDescription: "refused" } });
    expect(h.server.requests).toHaveLength(1);
  });

  it.each(["podidentity_no_binding", "podidentity_not_bound", "podidentity_host_network", "podidentity_assignment_failed"])(
    "NMI's 403 %s is CredentialUnavailableError, not retried, with a likely fix",
    async (code) => {
      h.server.enqueue(nmiError(403, code));
      const error = await rejection(h.credential().getToken(VAULT));
      expect(error).toBeInstanceOf(CredentialUnavailableError);
      expect(error.name).toBe("CredentialUnavailableError");
      expect(error).toMatchObject({ code: "IDENTITY_UNAVAILABLE", statusCode: 403, errorBody: { error: code } });
      expect(error.message).toMatch(/Likely fix/);
      expect(h.server.requests).toHaveLength(1);
    },
  );

  it("in a pod, retries a refused connection and reports ECONNREFUSED as the last cause", async () => {
    vi.stubEnv("KUBERNETES_SERVICE_HOST", "10.0.0.1");
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const error = await rejection(h.credential({ endpoint: `http://127.0.0.1:${port}`, retry: { maxRetries: 2 } }).getToken(VAULT));
    expect(error.code).toBe("RETRY_EXHAUSTED");
    expect(h.clock.sleeps).toHaveLength(2);
    expect(((error.cause as Error).cause as { code?: string }).code).toBe("ECONNREFUSED");
  });

  it("retries a connection reset before the answer", async () => {
    h.server.enqueue({ destroy: "socket" });
    expect((await h.credential().getToken(VAULT)).token).toBe("token-2");
    expect(h.server.requests).toHaveLength(2);
  });

  it("times out a slow attempt after timeoutMs and retries", async () => {
    h.server.enqueue({ delayMs: 2000 });
    const token = await h.credential({ timeoutMs: 100 }).getToken(VAULT);
    expect(token.token).toBe("token-2");
    expect(h.clock.sleeps).toHaveLength(1);
  });

  it("the per-attempt timeout covers the body too: a stalled body is retried", async () => {
    h.server.enqueue({ body: { access_token: "partial", expires_in: "3600" }, destroy: "stall" });
    const token = await h.credential({ timeoutMs: 150 }).getToken(VAULT);
    expect(token.token).toBe("token-2");
    expect(h.server.requests).toHaveLength(2);
  });

  it("an abort during the backoff wait rejects at once and stops retrying", async () => {
    const credential = h.credential();
    h.clock.hold();
    h.server.enqueue({ status: 503 });
    const controller = new AbortController();
    const sleeping = h.clock.nextSleep();
    const pending = credential.getToken(VAULT, { abortSignal: controller.signal });
    await sleeping;
    controller.abort();
    await expect(pending).rejects.toMatchObject({ name: "AbortError" });
    expect(h.server.requests).toHaveLength(1);
  });

  it("requestOptions.timeout ends the wait during a backoff", async () => {
    const credential = h.credential();
    h.clock.hold();
    h.server.enqueue({ status: 503 });
    const error = await rejection(credential.getToken(VAULT, { requestOptions: { timeout: 100 } }));
    expect(error).toMatchObject({ name: "CredentialUnavailableError", code: "TIMEOUT" });
    expect(h.server.requests).toHaveLength(1);
  });
});
