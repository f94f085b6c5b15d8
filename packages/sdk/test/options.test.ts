import { ChainedTokenCredential } from "@azure/identity";
import type { AccessToken } from "@azure/core-auth";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { PodIdentityCredential } from "../src/pod-identity-credential";
import { DEFAULT_POD_IDENTITY_CREDENTIAL_OPTIONS } from "../src/pod-identity-credential-options";
import { clearAzureEnv } from "./helpers/credential";

describe("PodIdentityCredential options", () => {
  beforeEach(() => clearAzureEnv());
  afterEach(() => vi.unstubAllEnvs());

  it("exports every default in one object, with a >= 90 s retry budget and a 30 s attempt timeout", () => {
    expect(DEFAULT_POD_IDENTITY_CREDENTIAL_OPTIONS).toMatchObject({
      endpoint: "http://169.254.169.254",
      connectTimeoutMs: 2000,
      timeoutMs: 30_000,
      refreshWindowMs: 300_000,
      firstContact: { connectTimeoutMs: 1_000, refusedMaxElapsedMs: 15_000 },
    });
    expect(DEFAULT_POD_IDENTITY_CREDENTIAL_OPTIONS.retry.maxElapsedMs).toBeGreaterThanOrEqual(90_000);
    // Off-cluster a chain must move on within 2 s; in a pod a restarting NMI is waited for at most 20 s.
    expect(DEFAULT_POD_IDENTITY_CREDENTIAL_OPTIONS.firstContact.connectTimeoutMs).toBeLessThan(2_000);
    expect(DEFAULT_POD_IDENTITY_CREDENTIAL_OPTIONS.firstContact.refusedMaxElapsedMs).toBeLessThanOrEqual(20_000);
  });

  it.each([
    [{ clientId: "a", resourceId: "b" }, /clientId and resourceId are mutually exclusive/],
    [{ clientId: "a", objectId: "c" }, /clientId and objectId/],
    [{ resourceId: "b", objectId: "c" }, /resourceId and objectId/],
    [{ clientId: "a", resourceId: "b", objectId: "c" }, /clientId and resourceId and objectId/],
  ])("throws at construction for several selectors %o, naming them", (options, message) => {
    expect(() => new PodIdentityCredential(options)).toThrow(message);
  });

  it.each([
    [{ endpoint: "ftp://169.254.169.254" }, /option endpoint must be an http:\/\/ or https:\/\/ URL/],
    [{ endpoint: "169.254.169.254" }, /option endpoint is not a valid URL/],
    [{ clientId: "  " }, /option clientId must be a non-empty string/],
    [{ timeoutMs: -1 }, /option timeoutMs must be a finite number >= 0/],
    [{ connectTimeoutMs: 0 }, /connectTimeoutMs must be > 0/],
    [{ retry: { maxRetries: 1.5 } }, /retry\.maxRetries must be an integer/],
    [{ retry: { initialDelayMs: 5000, maxDelayMs: 100 } }, /retry\.maxDelayMs must be >= retry\.initialDelayMs/],
    [{ refreshWindowMs: Number.NaN }, /option refreshWindowMs/],
    [{ firstContact: { connectTimeoutMs: 0 } }, /firstContact\.connectTimeoutMs must be > 0/],
    [{ firstContact: { refusedMaxElapsedMs: -5 } }, /option firstContact\.refusedMaxElapsedMs must be a finite number >= 0/],
  ])("rejects %o with a message naming the option", (options, message) => {
    expect(() => new PodIdentityCredential(options)).toThrow(message);
  });

  it("names env AZURE_POD_IDENTITY_AUTHORITY_HOST when that is the bad endpoint", () => {
    vi.stubEnv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "unix:///var/run/nmi.sock");
    expect(() => new PodIdentityCredential()).toThrow(/env AZURE_POD_IDENTITY_AUTHORITY_HOST must be an http/);
  });

  it.each([
    [["https://vault.azure.net/.default", "https://storage.azure.com/.default"], RangeError, /exactly one scope/],
    [[], RangeError, /exactly one scope/],
    ["", TypeError, /scope is empty/],
    ["/.default", TypeError, /scope is empty/],
    [[42], TypeError, /scope must be a string/],
  ])("rejects scopes %o at the call as a programming error (%o), sending nothing", async (scopes, type, message) => {
    const credential = new PodIdentityCredential({ endpoint: "http://127.0.0.1:9" });
    const error = await credential.getToken(scopes as string[]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(type);
    expect(error).toMatchObject({ message: expect.stringMatching(message) });
    expect((error as Error).name).not.toBe("CredentialUnavailableError");
    await credential.close();
  });

  it("stops a ChainedTokenCredential on an invalid scope instead of moving on to the next credential", async () => {
    let nextCalled = 0;
    const next = {
      getToken: async (): Promise<AccessToken> => {
        nextCalled++;
        return { token: "next", expiresOnTimestamp: Date.now() + 3_600_000 };
      },
    };
    const ours = new PodIdentityCredential({ endpoint: "http://127.0.0.1:9" });
    const chain = new ChainedTokenCredential(ours, next);
    await expect(chain.getToken(["https://a/.default", "https://b/.default"])).rejects.toBeInstanceOf(RangeError);
    expect(nextCalled).toBe(0);
    await ours.close();
  });

  it("uses workload identity only when AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID and AZURE_TENANT_ID are all set", () => {
    vi.stubEnv("AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/azure/tokens/azure-identity-token");
    vi.stubEnv("AZURE_TENANT_ID", "tenant");
    expect(new PodIdentityCredential().mode).toBe("imds");
    vi.stubEnv("AZURE_CLIENT_ID", "app");
    expect(new PodIdentityCredential().mode).toBe("workload-identity");
    // A managed identity named by resource or object ID cannot be reached through workload identity.
    expect(new PodIdentityCredential({ resourceId: "/subscriptions/x" }).mode).toBe("imds");
  });
});
