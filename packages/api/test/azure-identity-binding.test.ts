import { describe, expect, it } from "vitest";
import { normalizeAzureIdentityBinding } from "../src/index";

describe("normalizeAzureIdentityBinding", () => {
  it("reads the capitalised AzureIdentity and Selector of pre-1.6 guides", () => {
    const { object, ok, problems } = normalizeAzureIdentityBinding({
      metadata: { name: "b", namespace: "apps" },
      spec: { AzureIdentity: "id", Selector: "web" },
    });
    expect(ok).toBe(true);
    expect(object.spec).toEqual({ azureIdentity: "id", selector: "web" });
    expect(problems.map((p) => p.code)).toEqual(["legacy-key", "legacy-key"]);
  });

  it("reads the all-lowercase keys pre-1.6 MIC stored", () => {
    const { object } = normalizeAzureIdentityBinding({ spec: { azureidentity: "id", selector: "web", Weight: 3 } });
    expect(object.spec).toEqual({ azureIdentity: "id", selector: "web", weight: 3 });
  });

  it("reads a numeric YAML selector (selector: 123) as the label string, with a warning", () => {
    const { object, ok, problems } = normalizeAzureIdentityBinding({ spec: { azureIdentity: "id", selector: 123 } });
    expect(ok).toBe(true);
    expect(object.spec.selector).toBe("123");
    expect(problems.map((p) => p.code)).toEqual(["coerced-value"]);
  });

  it("refuses a binding without identity or selector, so it binds nothing", () => {
    const { ok, problems } = normalizeAzureIdentityBinding({ spec: { selector: "  " } });
    expect(ok).toBe(false);
    expect(problems.map((p) => p.code)).toEqual(["missing-azure-identity", "missing-selector"]);
  });

  it("keeps status.availableReplicas", () => {
    const { object } = normalizeAzureIdentityBinding({ spec: { azureIdentity: "i", selector: "s" }, status: { availableReplicas: 2 } });
    expect(object.status).toEqual({ availableReplicas: 2 });
  });
});
