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
  it("rejects several scopes and no scope with a RangeError, an empty or non-string scope with a TypeError", () => {
    expect(() => scopeToResource(["a/.default", "b/.default"])).toThrow(RangeError);
    expect(() => scopeToResource([])).toThrow(/exactly one scope/);
    expect(() => scopeToResource("  ")).toThrow(TypeError);
    expect(() => scopeToResource("/.default")).toThrow(/scope is empty/);
    expect(() => scopeToResource([null as unknown as string])).toThrow(TypeError);
  });
});
