import { CredentialUnavailableError } from "@azure/identity";
import { describe, expect, it } from "vitest";
import { scopeToResource } from "../src/scopes";

describe("scopeToResource", () => {
  it("strips /.default from a single scope", () => {
    expect(scopeToResource("https://vault.azure.net/.default")).toBe("https://vault.azure.net");
    expect(scopeToResource(["https://management.azure.com//.default"])).toBe("https://management.azure.com/");
  });
  it("keeps a scope without /.default unchanged", () => {
    expect(scopeToResource("https://storage.azure.com/")).toBe("https://storage.azure.com/");
  });
  it("rejects several scopes, no scope and an empty scope", () => {
    expect(() => scopeToResource(["a/.default", "b/.default"])).toThrow(CredentialUnavailableError);
    expect(() => scopeToResource([])).toThrow(/exactly one scope/);
    expect(() => scopeToResource("  ")).toThrow(/scope is empty/);
    expect(() => scopeToResource("/.default")).toThrow(/scope is empty/);
  });
});
