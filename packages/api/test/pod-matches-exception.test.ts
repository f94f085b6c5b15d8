import { describe, expect, it } from "vitest";
import { findPodException, podMatchesException } from "../src/index";
import { exception, pod } from "./helpers/objects";

describe("podMatchesException", () => {
  const mic = exception("aad", "mic", { app: "mic", component: "mic" });

  it("exempts a pod with any one of the labels (not all of them)", () => {
    expect(podMatchesException(pod("aad", "p", undefined, { app: "mic" }), [mic])).toBe(true);
    expect(podMatchesException(pod("aad", "p", undefined, { component: "mic", app: "other" }), [mic])).toBe(true);
  });

  it("compares values ignoring case, keys exactly", () => {
    expect(podMatchesException(pod("aad", "p", undefined, { app: "MIC" }), [mic])).toBe(true);
    expect(podMatchesException(pod("aad", "p", undefined, { App: "mic" }), [mic])).toBe(false);
  });

  it("only covers pods in the exception's own namespace", () => {
    expect(podMatchesException(pod("default", "p", undefined, { app: "mic" }), [mic])).toBe(false);
  });

  it("exempts nothing with empty podLabels or a pod without labels", () => {
    expect(podMatchesException(pod("aad", "p", undefined, { app: "mic" }), [exception("aad", "e", {})])).toBe(false);
    expect(podMatchesException({ metadata: { namespace: "aad" } }, [mic])).toBe(false);
  });

  it("finds which exception applied, for logs", () => {
    const other = exception("aad", "other", { tier: "infra" });
    expect(findPodException(pod("aad", "p", undefined, { tier: "infra" }), [mic, other])).toBe(other);
  });
});
