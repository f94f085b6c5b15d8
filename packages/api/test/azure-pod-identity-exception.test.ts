import { describe, expect, it } from "vitest";
import { normalizeAzurePodIdentityException } from "../src/index";

describe("normalizeAzurePodIdentityException", () => {
  it("reads podLabels and the legacy PodLabels", () => {
    expect(normalizeAzurePodIdentityException({ spec: { podLabels: { app: "mic" } } }).object.spec).toEqual({
      podLabels: { app: "mic" },
    });
    const legacy = normalizeAzurePodIdentityException({ spec: { PodLabels: { app: "mic" } }, Status: { status: "ok" } });
    expect(legacy.object.spec).toEqual({ podLabels: { app: "mic" } });
    expect(legacy.object.status).toEqual({ status: "ok" });
  });

  it("stringifies scalar label values YAML typed (enabled: true) and drops non-scalars", () => {
    const { object, problems } = normalizeAzurePodIdentityException({
      spec: { podLabels: { enabled: true, tier: 2, bad: { x: 1 } } },
    });
    expect(object.spec.podLabels).toEqual({ enabled: "true", tier: "2" });
    expect(problems.map((p) => `${p.code}:${p.path}`)).toEqual([
      "coerced-value:spec.podLabels.enabled",
      "coerced-value:spec.podLabels.tier",
      "invalid-field:spec.podLabels.bad",
    ]);
  });

  it("warns that an exception without labels exempts nothing, without refusing it", () => {
    const { ok, problems } = normalizeAzurePodIdentityException({ spec: {} });
    expect(ok).toBe(true);
    expect(problems.map((p) => p.code)).toEqual(["empty-pod-labels"]);
  });
});
