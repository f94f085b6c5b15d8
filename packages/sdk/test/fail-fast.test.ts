import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { AccessToken } from "@azure/core-auth";
import { ChainedTokenCredential } from "@azure/identity";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DIAGNOSTICS_CHANNELS } from "../src/diagnostics";
import type { TokenAcquireEvent, TokenRetryEvent } from "../src/diagnostics";
import { PodIdentityUnavailableError } from "../src/errors";
import { PodIdentityCredential } from "../src/pod-identity-credential";
import { clearAzureEnv, startHarness } from "./helpers/credential";
import type { Harness } from "./helpers/credential";
import { tokenBody } from "./helpers/imds-server";

const VAULT = "https://vault.azure.net/.default";
const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);

/** A loopback port where nothing listens (connections are refused). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function rejection(promise: Promise<unknown>): Promise<PodIdentityUnavailableError> {
  try {
    await promise;
  } catch (error) {
    return error as PodIdentityUnavailableError;
  }
  throw new Error("expected a rejection");
}

/** The network code at the bottom of an error's cause chain. */
function rootCode(error: unknown): string | undefined {
  let code: string | undefined;
  for (let e = error; e !== null && typeof e === "object"; e = (e as { cause?: unknown }).cause) {
    const c = (e as { code?: unknown }).code;
    if (typeof c === "string") code = c;
  }
  return code;
}

describe("PodIdentityCredential before the endpoint has ever answered", () => {
  let h: Harness;
  const retries: TokenRetryEvent[] = [];
  const acquires: TokenAcquireEvent[] = [];
  const onRetry = (e: unknown): void => void retries.push(e as TokenRetryEvent);
  const onAcquire = (e: unknown): void => void acquires.push(e as TokenAcquireEvent);
  const servers: Server[] = [];

  beforeEach(async () => {
    h = await startHarness();
    retries.length = 0;
    acquires.length = 0;
    subscribe(DIAGNOSTICS_CHANNELS.retry, onRetry);
    subscribe(DIAGNOSTICS_CHANNELS.acquire, onAcquire);
  });
  afterEach(async () => {
    unsubscribe(DIAGNOSTICS_CHANNELS.retry, onRetry);
    unsubscribe(DIAGNOSTICS_CHANNELS.acquire, onAcquire);
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    await h.close();
  });

  it("off-cluster (no KUBERNETES_SERVICE_HOST), a refused connection is CredentialUnavailableError at once, not retried", async () => {
    const port = await closedPort();
    const error = await rejection(h.credential({ endpoint: `http://127.0.0.1:${port}` }).getToken(VAULT));
    expect(error).toBeInstanceOf(PodIdentityUnavailableError);
    expect(error.name).toBe("CredentialUnavailableError");
    expect(error.code).toBe("ENDPOINT_UNREACHABLE");
    expect(rootCode(error)).toBe("ECONNREFUSED");
    expect(error.message).toMatch(/KUBERNETES_SERVICE_HOST is not set/);
    expect(h.clock.sleeps).toEqual([]);
    expect(retries).toEqual([]);
  });

  it("off-cluster, a ChainedTokenCredential moves on to its next credential after one refused attempt", async () => {
    const port = await closedPort();
    let nextCalls = 0;
    const next = {
      getToken: async (): Promise<AccessToken> => {
        nextCalls++;
        return { token: "from-next", expiresOnTimestamp: Date.now() + 3_600_000 };
      },
    };
    // The default clock and sleep: nothing here may wait on a backoff.
    clearAzureEnv();
    const ours = new PodIdentityCredential({ endpoint: `http://127.0.0.1:${port}` });
    const token = await new ChainedTokenCredential(ours, next).getToken(VAULT);
    await ours.close();
    expect(token?.token).toBe("from-next");
    expect(nextCalls).toBe(1);
    expect(retries).toEqual([]);
  });

  it("in a pod, a refused connection is retried (NMI restarting) and the token arrives once NMI listens again", async () => {
    vi.stubEnv("KUBERNETES_SERVICE_HOST", "10.0.0.1");
    const port = await closedPort();
    const sleeps: number[] = [];
    const credential = h.credential({
      endpoint: `http://127.0.0.1:${port}`,
      // The first backoff is where "NMI comes back": the retry waits until the listener is up.
      sleep: async (ms) => {
        sleeps.push(ms);
        if (sleeps.length === 1) {
          const nmi = createServer((_req, res) => {
            res.writeHead(200, { "content-type": "application/json", "x-podidentity-nmi": "test" });
            res.end(JSON.stringify(tokenBody({ token: "after-restart", nowMs: h.clock.now() })));
          });
          servers.push(nmi);
          await new Promise<void>((resolve) => nmi.listen(port, "127.0.0.1", resolve));
        }
        h.clock.advance(ms);
      },
    });
    const token = await credential.getToken(VAULT);
    expect(token.token).toBe("after-restart");
    expect(sleeps).toHaveLength(1);
    expect(retries).toMatchObject([{ retry: 1, reason: "ECONNREFUSED" }]);
    expect(acquires).toMatchObject([{ attempts: 2 }]);
  });

  it("in a pod, refused connections are retried for firstContact.refusedMaxElapsedMs (15 s), then CredentialUnavailableError", async () => {
    vi.stubEnv("KUBERNETES_SERVICE_HOST", "10.0.0.1");
    const port = await closedPort();
    const error = await rejection(h.credential({ endpoint: `http://127.0.0.1:${port}` }).getToken(VAULT));
    expect(error.name).toBe("CredentialUnavailableError");
    expect(error.code).toBe("RETRY_EXHAUSTED");
    expect(rootCode(error)).toBe("ECONNREFUSED");
    expect(error.message).toMatch(/option firstContact\.refusedMaxElapsedMs=15000/);
    // random() = 0.5: 375, 750, 1500, 3000, 6000, then the rest of the 15 s: the last attempt starts at 15 s.
    expect(h.clock.sleeps).toEqual([375, 750, 1500, 3000, 6000, 3375]);
    expect(sum(h.clock.sleeps)).toBe(15_000);
    expect(retries.every((r) => r.reason === "ECONNREFUSED")).toBe(true);
  });

  it("a shorter firstContact.refusedMaxElapsedMs is honoured", async () => {
    vi.stubEnv("KUBERNETES_SERVICE_HOST", "10.0.0.1");
    const port = await closedPort();
    const error = await rejection(
      h.credential({ endpoint: `http://127.0.0.1:${port}`, firstContact: { refusedMaxElapsedMs: 1_000 } }).getToken(VAULT),
    );
    expect(error.code).toBe("RETRY_EXHAUSTED");
    expect(h.clock.sleeps).toEqual([375, 625]);
  });

  it("once the endpoint has answered anything, a refused connection keeps the long retry budget", async () => {
    // Off-cluster rules would fail a refused connection at once; after an answer it is NMI going away for a while.
    let answered = 0;
    const nmi = createServer((req, res) => {
      answered++;
      res.writeHead(503, { "content-type": "application/json", "x-podidentity-nmi": "test", connection: "close" });
      res.end(JSON.stringify({ error: "podidentity_pending", error_description: "assigning" }));
      // NMI stops right after its first answer: every later attempt is refused.
      nmi.close();
    });
    servers.push(nmi);
    await new Promise<void>((resolve) => nmi.listen(0, "127.0.0.1", resolve));
    const endpoint = `http://127.0.0.1:${(nmi.address() as AddressInfo).port}`;
    const error = await rejection(h.credential({ endpoint }).getToken(VAULT));
    expect(answered).toBe(1);
    expect(error.code).toBe("RETRY_EXHAUSTED");
    expect(rootCode(error)).toBe("ECONNREFUSED");
    expect(error.message).toMatch(/retry\.maxElapsedMs=90000/);
    expect(sum(h.clock.sleeps)).toBeGreaterThan(15_000);
    expect(retries[0]).toMatchObject({ statusCode: 503, reason: "podidentity_pending" });
    expect(retries.slice(1).every((r) => r.reason === "ECONNREFUSED")).toBe(true);
  });

  it("once the endpoint has answered, 503/404/410/429 before any token keep the long wait", async () => {
    h.server.enqueue({ status: 404 }, { status: 410 }, { status: 429 });
    h.server.fallback = () => ({ status: 503, headers: { "x-podidentity-nmi": "test" }, body: { error: "podidentity_pending", error_description: "x" } });
    const error = await rejection(h.credential().getToken(VAULT));
    expect(error.code).toBe("RETRY_EXHAUSTED");
    expect(error.message).toMatch(/retry\.maxElapsedMs=90000/);
    expect(sum(h.clock.sleeps)).toBeGreaterThan(70_000);
  });
});
