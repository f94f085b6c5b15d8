import { describe, expect, it } from "vitest";
import { bindingSelectsPod, podSelector } from "../src/index";
import { binding, pod } from "./helpers/objects";

describe("bindingSelectsPod", () => {
  const b = binding("apps", "b", "id", "web");

  it("selects a pod whose aadpodidbinding label equals the selector", () => {
    expect(bindingSelectsPod(b, pod("apps", "p", "web"))).toBe(true);
  });

  it("compares exactly: case and blanks matter, as for Kubernetes labels", () => {
    expect(bindingSelectsPod(b, pod("apps", "p", "Web"))).toBe(false);
    expect(bindingSelectsPod(b, pod("apps", "p", "web "))).toBe(false);
  });

  it("ignores namespaces (the catalog applies the namespace rules)", () => {
    expect(bindingSelectsPod(b, pod("other", "p", "web"))).toBe(true);
  });

  it("never selects through an empty selector or label", () => {
    expect(bindingSelectsPod(binding("apps", "b", "id", ""), pod("apps", "p", ""))).toBe(false);
    expect(bindingSelectsPod(b, pod("apps", "p"))).toBe(false);
    expect(bindingSelectsPod(b, {})).toBe(false);
    expect(podSelector(pod("apps", "p", ""))).toBeUndefined();
  });
});
