import { describe, expect, it } from "vitest";
import { IDENTITY_TYPE, normalizeAzureIdentity, type NormalizationProblem } from "../src/index";
import { RESOURCE_ID } from "./helpers/objects";

const codes = (problems: readonly NormalizationProblem[]) => problems.map((p) => `${p.severity}:${p.code}:${p.path}`);

const manifest = (spec: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  apiVersion: "aadpodidentity.k8s.io/v1",
  kind: "AzureIdentity",
  metadata: { name: "id", namespace: "apps", uid: "u-1", resourceVersion: "7" },
  spec,
  ...extra,
});

describe("normalizeAzureIdentity", () => {
  it("reads a canonical type-0 identity unchanged and reports nothing", () => {
    const input = manifest({ type: 0, resourceID: RESOURCE_ID("a"), clientID: "c-1" });
    const { object, problems, ok } = normalizeAzureIdentity(input);
    expect(ok).toBe(true);
    expect(problems).toEqual([]);
    expect(object).toEqual(input);
  });

  it("reads the Go field names older guides use, flagging each as legacy (info only)", () => {
    const { object, problems, ok } = normalizeAzureIdentity(
      manifest({ type: 0, ResourceID: RESOURCE_ID("a"), ClientID: "c-1" }),
    );
    expect(ok).toBe(true);
    expect(object.spec).toEqual({ type: 0, resourceID: RESOURCE_ID("a"), clientID: "c-1" });
    expect(codes(problems)).toEqual(["info:legacy-key:spec.resourceID", "info:legacy-key:spec.clientID"]);
  });

  it("matches keys in any casing, as Go's encoding/json did (ClientId, clientid, TENANTID)", () => {
    const { object } = normalizeAzureIdentity(
      manifest({
        Type: "1",
        ClientId: "c",
        TENANTID: "t",
        clientpassword: { Name: "s", NAMESPACE: "apps" },
        AuxiliaryTenantIds: ["x"],
        ADEndpoint: "https://login.example/",
        adresourceid: "r",
      }),
    );
    expect(object.spec).toEqual({
      type: 1,
      clientID: "c",
      tenantID: "t",
      clientPassword: { name: "s", namespace: "apps" },
      auxiliaryTenantIDs: ["x"],
      adEndpoint: "https://login.example/",
      adResourceID: "r",
    });
  });

  it.each([
    [0, 0],
    ["0", 0],
    [" 2 ", 2],
    ["1", 1],
  ])("accepts type %j as %j", (type, expected) => {
    const spec = { type, resourceID: RESOURCE_ID("a"), clientID: "c", tenantID: "t", clientPassword: { name: "s", namespace: "n" } };
    expect(normalizeAzureIdentity(manifest(spec)).object.spec.type).toBe(expected);
  });

  it("treats a missing type as 0, as v1.8 (Go's zero value) did", () => {
    const { object, ok } = normalizeAzureIdentity(manifest({ resourceID: RESOURCE_ID("a"), clientID: "c" }));
    expect(object.spec.type).toBe(IDENTITY_TYPE.UserAssignedMSI);
    expect(ok).toBe(true);
  });

  it.each([[3], ["abc"], [1.5], [true], [{ a: 1 }]])("keeps an unknown type %j and refuses the identity", (type) => {
    const { object, problems, ok } = normalizeAzureIdentity(manifest({ type, clientID: "c" }));
    expect(ok).toBe(false);
    expect(object.spec.type).not.toBe(0);
    expect(codes(problems)).toContain("error:unknown-identity-type:spec.type");
  });

  it("trims values, so a resource ID pasted with a trailing newline still works", () => {
    const { object, ok } = normalizeAzureIdentity(manifest({ resourceID: `  ${RESOURCE_ID("a")}\n`, clientID: " c \n" }));
    expect(ok).toBe(true);
    expect(object.spec.resourceID).toBe(RESOURCE_ID("a"));
    expect(object.spec.clientID).toBe("c");
  });

  it("refuses a type-0 identity without resourceID or clientID and says which", () => {
    const { problems, ok } = normalizeAzureIdentity(manifest({ type: 0 }));
    expect(ok).toBe(false);
    expect(codes(problems)).toEqual(["error:missing-resource-id:spec.resourceID", "error:missing-client-id:spec.clientID"]);
  });

  it("refuses a resourceID v1.8's pattern rejects, naming the expected shape", () => {
    const { problems, ok } = normalizeAzureIdentity(manifest({ resourceID: "my-identity", clientID: "c" }));
    expect(ok).toBe(false);
    const problem = problems.find((p) => p.code === "invalid-resource-id");
    expect(problem?.message).toContain("/subscriptions/<subscription>/resourcegroups/<group>");
  });

  it("accepts, with a warning, a resourceID v1.8 accepted but ARM would not (trailing segments)", () => {
    const { problems, ok } = normalizeAzureIdentity(manifest({ resourceID: `${RESOURCE_ID("a")}/extra`, clientID: "c" }));
    expect(ok).toBe(true);
    expect(codes(problems)).toEqual(["warning:malformed-resource-id:spec.resourceID"]);
  });

  it("ignores resourceID on service principals, as v1.8 did", () => {
    const spec = { type: 1, resourceID: "garbage", clientID: "c", tenantID: "t", clientPassword: { name: "s", namespace: "n" } };
    expect(normalizeAzureIdentity(manifest(spec)).ok).toBe(true);
  });

  it.each([1, 2])("requires tenantID, clientID and a full clientPassword for type %i", (type) => {
    const { problems, ok } = normalizeAzureIdentity(manifest({ type, clientPassword: { name: "s" } }));
    expect(ok).toBe(false);
    expect(codes(problems)).toEqual([
      "error:missing-tenant-id:spec.tenantID",
      "error:missing-client-id:spec.clientID",
      "error:missing-client-password:spec.clientPassword",
    ]);
  });

  it("reports both spellings when they disagree and keeps the canonical one", () => {
    const { object, problems } = normalizeAzureIdentity(
      manifest({ resourceID: RESOURCE_ID("a"), clientID: "new", ClientID: "old" }),
    );
    expect(object.spec.clientID).toBe("new");
    expect(problems.find((p) => p.code === "conflicting-keys")?.message).toContain("ClientID");
  });

  it("ignores a wrong-typed value with a warning and still judges the rest", () => {
    const { problems, ok } = normalizeAzureIdentity(manifest({ resourceID: RESOURCE_ID("a"), clientID: { guid: null } }));
    expect(ok).toBe(false);
    expect(codes(problems)).toEqual(["warning:invalid-field:spec.clientID", "error:missing-client-id:spec.clientID"]);
  });

  it("copies metadata through and sets apiVersion and kind", () => {
    const { object } = normalizeAzureIdentity({ metadata: { name: "x", labels: { a: "b" } }, spec: {} });
    expect(object.apiVersion).toBe("aadpodidentity.k8s.io/v1");
    expect(object.kind).toBe("AzureIdentity");
    expect(object.metadata).toEqual({ name: "x", labels: { a: "b" } });
  });

  it("reads status.availableReplicas in either spelling", () => {
    const spec = { resourceID: RESOURCE_ID("a"), clientID: "c" };
    expect(normalizeAzureIdentity(manifest(spec, { status: { AvailableReplicas: 1 } })).object.status).toEqual({
      availableReplicas: 1,
    });
  });

  it.each([null, undefined, 42, "text", [1]])("never throws on %j", (input) => {
    const result = normalizeAzureIdentity(input);
    expect(result.ok).toBe(false);
    expect(result.object.kind).toBe("AzureIdentity");
  });
});
