import { describe, expect, it } from "vitest";
import { identityMatchesSelector, isEmptySelector } from "../src/index";
import { identity, RESOURCE_ID } from "./helpers/objects";

const id = identity("apps", "web", { spec: { clientID: "AbCd-1234" } });

describe("identityMatchesSelector", () => {
  it("matches anything when the request names no identity", () => {
    expect(identityMatchesSelector(id, {})).toBe(true);
    expect(identityMatchesSelector(id, { clientId: "", resourceId: " " })).toBe(true);
    expect(isEmptySelector({ clientId: "" })).toBe(true);
    expect(isEmptySelector({ objectId: "x" })).toBe(false);
  });

  it("compares client IDs ignoring case and blanks (v1.8 picked case-sensitively and failed after waiting)", () => {
    expect(identityMatchesSelector(id, { clientId: "abcd-1234" })).toBe(true);
    expect(identityMatchesSelector(id, { clientId: " ABCD-1234 " })).toBe(true);
    expect(identityMatchesSelector(id, { clientId: "abcd-9999" })).toBe(false);
  });

  it("compares resource IDs ignoring case", () => {
    expect(identityMatchesSelector(id, { resourceId: RESOURCE_ID("web").toLowerCase() })).toBe(true);
    expect(identityMatchesSelector(id, { resourceId: RESOURCE_ID("other") })).toBe(false);
  });

  it("never matches a resource ID against a service principal, which has none", () => {
    const sp = identity("apps", "sp", { spec: { type: 1, resourceID: undefined } });
    expect(identityMatchesSelector(sp, { resourceId: RESOURCE_ID("sp") })).toBe(false);
  });

  it("matches an object ID only through the caller's objectIdOf", () => {
    expect(identityMatchesSelector(id, { objectId: "OID-1" })).toBe(false);
    const objectIdOf = () => "oid-1";
    expect(identityMatchesSelector(id, { objectId: "OID-1" }, { objectIdOf })).toBe(true);
    expect(identityMatchesSelector(id, { objectId: "oid-2" }, { objectIdOf })).toBe(false);
  });

  it("requires every given field to match", () => {
    expect(identityMatchesSelector(id, { clientId: "abcd-1234", resourceId: RESOURCE_ID("other") })).toBe(false);
    expect(identityMatchesSelector(id, { clientId: "abcd-1234", resourceId: RESOURCE_ID("web") })).toBe(true);
  });
});
