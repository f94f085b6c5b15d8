import { describe, expect, it } from "vitest";
import { isIdentityNamespaced } from "../src/index";
import { identity } from "./helpers/objects";

describe("isIdentityNamespaced", () => {
  it("is true for every identity when matching is forced namespaced (our default)", () => {
    expect(isIdentityNamespaced(identity("a", "x"), true)).toBe(true);
  });

  it("is false without the flag or the annotation (v1.8's cross-namespace default)", () => {
    expect(isIdentityNamespaced(identity("a", "x"), false)).toBe(false);
  });

  it.each(["namespaced", "Namespaced", " NAMESPACED "])("honours the annotation value %j", (value) => {
    expect(isIdentityNamespaced(identity("a", "x", { namespacedAnnotation: value }), false)).toBe(true);
  });

  it.each(["", "cluster", "namespace"])("ignores other annotation values (%j)", (value) => {
    expect(isIdentityNamespaced(identity("a", "x", { namespacedAnnotation: value }), false)).toBe(false);
  });
});
