import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  AZURE_IDENTITY_BINDING_SPEC_SPELLINGS,
  AZURE_IDENTITY_SPEC_SPELLINGS,
  normalizeAzureAssignedIdentity,
  normalizeAzureIdentity,
  normalizeAzureIdentityBinding,
  normalizeAzurePodIdentityException,
  type KeySpellings,
  type Normalized,
} from "../src/index";
import { RESOURCE_ID } from "./helpers/objects";

/** Any spelling of a key that Go's decoder would have matched: a declared one or a random casing. */
function spelling(table: KeySpellings, canonical: string): fc.Arbitrary<string> {
  const declared = [canonical, ...(table[canonical] ?? [])];
  const randomCase = fc
    .array(fc.boolean(), { minLength: canonical.length, maxLength: canonical.length })
    .map((upper) => [...canonical].map((c, i) => (upper[i] ? c.toUpperCase() : c.toLowerCase())).join(""));
  return fc.oneof(fc.constantFrom(...declared), randomCase);
}

const padded = (values: fc.Arbitrary<string>) =>
  fc.tuple(fc.constantFrom("", " ", "\n"), values, fc.constantFrom("", " ", "\t\n")).map(([a, v, b]) => a + v + b);

/** Values of every JSON shape, weighted towards plausible ones. */
const fieldValue = fc.oneof(
  { weight: 5, arbitrary: padded(fc.constantFrom("c-1", "t-1", "web", RESOURCE_ID("a"), "not-an-id")) },
  { weight: 2, arbitrary: fc.constantFrom(0, 1, 2, 3, "0", "1", " 2 ", "abc", 1.5) },
  { weight: 1, arbitrary: fc.constantFrom(null, true, [], ["x", " y "], { name: "s", Namespace: "n" }, {}) },
);

function rawSpec(table: KeySpellings): fc.Arbitrary<Record<string, unknown>> {
  const fields = Object.keys(table);
  return fc
    .array(fc.tuple(fc.constantFrom(...fields), fieldValue), { maxLength: 8 })
    .chain((entries) =>
      fc.tuple(...entries.map(([field, value]) => spelling(table, field).map((key) => [key, value] as const))),
    )
    .map((entries) => Object.fromEntries(entries));
}

const rawObject = (table: KeySpellings) =>
  fc.record({
    metadata: fc.constant({ name: "x", namespace: "ns" }),
    spec: rawSpec(table),
    status: fc.oneof(fc.constant(undefined), fc.constant({ AvailableReplicas: 1 }), fc.constant({ status: "Assigned" })),
  });

/** Normalising what normalisation produced changes nothing and finds nothing to forgive. */
function expectIdempotent<T>(normalize: (input: unknown) => Normalized<T>, input: unknown): void {
  const once = normalize(input);
  const twice = normalize(structuredClone(once.object));
  expect(twice.object).toEqual(once.object);
  expect(twice.ok).toBe(once.ok);
  const forgiven = ["legacy-key", "conflicting-keys", "coerced-value", "invalid-field"];
  expect(twice.problems.filter((p) => forgiven.includes(p.code))).toEqual([]);
}

describe("normalisation properties", () => {
  it("AzureIdentity: idempotent for any spelling and value", () => {
    fc.assert(fc.property(rawObject(AZURE_IDENTITY_SPEC_SPELLINGS), (raw) => expectIdempotent(normalizeAzureIdentity, raw)));
  });

  it("AzureIdentityBinding: idempotent for any spelling and value", () => {
    fc.assert(
      fc.property(rawObject(AZURE_IDENTITY_BINDING_SPEC_SPELLINGS), (raw) => expectIdempotent(normalizeAzureIdentityBinding, raw)),
    );
  });

  it("AzureAssignedIdentity and AzurePodIdentityException: idempotent, and none of the four ever throws", () => {
    fc.assert(
      fc.property(fc.anything(), (raw) => {
        expectIdempotent(normalizeAzureAssignedIdentity, raw);
        expectIdempotent(normalizeAzurePodIdentityException, raw);
        expect(() => normalizeAzureIdentity(raw)).not.toThrow();
        expect(() => normalizeAzureIdentityBinding(raw)).not.toThrow();
      }),
    );
  });

  it("the spelling of keys never changes the result, only the legacy-key notes", () => {
    const canonical = {
      type: 0,
      resourceID: RESOURCE_ID("a"),
      clientID: "c-1",
      tenantID: "t-1",
      clientPassword: { name: "s", namespace: "n" },
      auxiliaryTenantIDs: ["x"],
      adEndpoint: "https://login.example/",
      adResourceID: "r",
      replicas: 1,
    };
    const expected = normalizeAzureIdentity({ spec: canonical });
    const respelled = fc.tuple(
      ...Object.entries(canonical).map(([key, value]) => spelling(AZURE_IDENTITY_SPEC_SPELLINGS, key).map((k) => [k, value] as const)),
    );
    fc.assert(
      fc.property(respelled, (entries) => {
        const result = normalizeAzureIdentity({ spec: Object.fromEntries(entries) });
        expect(result.object).toEqual(expected.object);
        expect(result.problems.filter((p) => p.code !== "legacy-key")).toEqual(expected.problems);
      }),
    );
  });
});
