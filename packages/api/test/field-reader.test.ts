import { describe, expect, it } from "vitest";
import { FieldReader } from "../src/field-reader";
import type { NormalizationProblem } from "../src/index";

const reader = (source: unknown) => {
  const problems: NormalizationProblem[] = [];
  return { problems, r: FieldReader.of(source, "spec", { clientID: ["ClientID", "clientId"] }, problems) };
};

describe("FieldReader", () => {
  it("prefers the canonical key, then the spelling table's order, then any other casing", () => {
    expect(reader({ CLIENTID: "z", clientId: "b", ClientID: "a" }).r.raw("clientID")).toBe("a");
    expect(reader({ CLIENTID: "z", clientId: "b" }).r.raw("clientID")).toBe("b");
    expect(reader({ CLIENTID: "z" }).r.raw("clientID")).toBe("z");
  });

  it("does not report spellings that agree once trimmed", () => {
    const { r, problems } = reader({ clientID: "a", ClientID: " a " });
    r.string("clientID");
    expect(problems).toEqual([]);
  });

  it("treats null as absent, as Go's decoder does", () => {
    const { r, problems } = reader({ clientID: null, ClientID: "a" });
    expect(r.string("clientID")).toBe("a");
    expect(problems.map((p) => p.code)).toEqual(["legacy-key"]);
  });

  it("reads empty and blank strings as absent", () => {
    expect(reader({ clientID: "   " }).r.string("clientID")).toBeUndefined();
  });

  it("reports a non-object where an object belongs, and reads it as empty", () => {
    const { r, problems } = reader("text");
    expect(r.string("clientID")).toBeUndefined();
    expect(problems.map((p) => `${p.code}:${p.path}`)).toEqual(["invalid-field:spec"]);
  });

  it("reads integers, accepting numeric strings with a warning and ignoring the rest", () => {
    expect(reader({ n: 3 }).r.integer("n")).toBe(3);
    const coerced = reader({ n: "4" });
    expect(coerced.r.integer("n")).toBe(4);
    expect(coerced.problems.map((p) => p.code)).toEqual(["coerced-value"]);
    expect(reader({ n: 1.5 }).r.integer("n")).toBeUndefined();
  });

  it("reads a single string where a list belongs as a one-item list", () => {
    const { r, problems } = reader({ ids: " a " });
    expect(r.stringList("ids")).toEqual(["a"]);
    expect(problems.map((p) => p.code)).toEqual(["coerced-value"]);
    expect(reader({ ids: ["a", "", 3, "b"] }).r.stringList("ids")).toEqual(["a", "b"]);
  });
});
