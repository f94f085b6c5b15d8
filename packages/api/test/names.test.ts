import { describe, expect, it } from "vitest";
import { API_GROUP_VERSION, ASSIGNED_IDENTITY_FINALIZER, POD_LABEL } from "../src/index";

describe("v1.8 names", () => {
  it("keeps aad-pod-identity's group, label and finalizer", () => {
    expect(API_GROUP_VERSION).toBe("aadpodidentity.k8s.io/v1");
    expect(POD_LABEL).toBe("aadpodidbinding");
    expect(ASSIGNED_IDENTITY_FINALIZER).toBe("azureassignedidentity.finalizers.aadpodidentity.k8s.io");
  });
});
