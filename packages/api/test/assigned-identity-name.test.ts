import { describe, expect, it } from "vitest";
import { assignedIdentityName, assignedIdentityNamespace } from "../src/index";
import { identity } from "./helpers/objects";

describe("AzureAssignedIdentity naming", () => {
  it("names it <pod>-<podNamespace>-<identity>, as v1.8 did, so v1.8's objects are adopted", () => {
    expect(assignedIdentityName("web-7d9f", "shop", "kv-reader")).toBe("web-7d9f-shop-kv-reader");
  });

  it("puts it in the identity's namespace when namespaced", () => {
    expect(assignedIdentityNamespace(identity("shop", "kv"), true)).toBe("shop");
  });

  it("puts it in default otherwise, where v1.8 put it", () => {
    expect(assignedIdentityNamespace(identity("shop", "kv"), false)).toBe("default");
  });
});
