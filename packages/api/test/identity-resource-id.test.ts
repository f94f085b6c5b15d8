import { describe, expect, it } from "vitest";
import {
  canonicalResourceId,
  InvalidResourceIdError,
  isValidIdentityResourceId,
  parseIdentityResourceId,
  tryParseIdentityResourceId,
} from "../src/index";

const ID = "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-1";

describe("identity resource IDs", () => {
  it("parses the ID az identity show prints", () => {
    expect(parseIdentityResourceId(ID)).toEqual({ subscriptionId: "sub-1", resourceGroup: "rg-1", name: "id-1" });
  });

  it("ignores the case of segment names, as ARM does", () => {
    const lower = ID.replace("resourceGroups", "resourcegroups").replace("Microsoft.ManagedIdentity", "microsoft.managedidentity");
    expect(parseIdentityResourceId(lower).resourceGroup).toBe("rg-1");
    expect(parseIdentityResourceId(ID.toUpperCase()).name).toBe("ID-1");
  });

  it.each([
    ["", "it is empty"],
    ["my-identity", "must start with /subscriptions/"],
    [`${ID}/`, "9 path segments"],
    [ID.replace("Microsoft.ManagedIdentity", "Microsoft.Compute"), "Microsoft.Compute"],
    [ID.replace("userAssignedIdentities", "virtualMachines"), "userassignedidentities"],
    [ID.replace("rg-1", ""), "resource group is empty"],
    [` ${ID}`, "whitespace"],
  ])("rejects %j saying why", (id, reason) => {
    expect(() => parseIdentityResourceId(id)).toThrowError(InvalidResourceIdError);
    expect(() => parseIdentityResourceId(id)).toThrowError(reason);
    expect(tryParseIdentityResourceId(id)).toBeUndefined();
  });

  it("gives the error a stable code and the offending ID", () => {
    try {
      parseIdentityResourceId("x");
      expect.unreachable();
    } catch (error) {
      expect(error).toMatchObject({ code: "INVALID_RESOURCE_ID", resourceId: "x" });
    }
  });

  it("keeps v1.8's acceptance pattern: unanchored and case-insensitive", () => {
    expect(isValidIdentityResourceId(ID)).toBe(true);
    expect(isValidIdentityResourceId(ID.toLowerCase())).toBe(true);
    expect(isValidIdentityResourceId(`prefix${ID}/suffix`)).toBe(true);
    expect(isValidIdentityResourceId("/subscriptions/s/resourcegroups/r/providers/Microsoft.ManagedIdentity/userAssignedIdentities/")).toBe(false);
    expect(isValidIdentityResourceId("<Resource ID of Managed Identity>")).toBe(false);
  });

  it("compares IDs in one canonical form", () => {
    expect(canonicalResourceId(` ${ID.toUpperCase()} `)).toBe(canonicalResourceId(ID));
  });
});
