import { describe, expect, it } from "vitest";
import {
  ASSIGNED_IDENTITY_STATE,
  assignedIdentityState,
  normalizeAzureAssignedIdentity,
  type AzureAssignedIdentity,
} from "../src/index";
import { loadFixture } from "./helpers/fixtures";
import { binding, identity } from "./helpers/objects";

const assigned = (status?: string): AzureAssignedIdentity => ({
  apiVersion: "aadpodidentity.k8s.io/v1",
  kind: "AzureAssignedIdentity",
  metadata: { name: "p-apps-id", namespace: "apps" },
  spec: {
    azureIdentityRef: identity("apps", "id"),
    azureBindingRef: binding("apps", "b", "id", "web"),
    pod: "p",
    podNamespace: "apps",
    nodename: "node-1",
  },
  ...(status !== undefined && { status: { status } }),
});

describe("normalizeAzureAssignedIdentity", () => {
  it("round-trips a canonical object", () => {
    const input = assigned("Assigned");
    const { object, ok, problems } = normalizeAzureAssignedIdentity(input);
    expect(problems).toEqual([]);
    expect(ok).toBe(true);
    expect(object).toEqual(input);
  });

  it("adopts a pre-1.6 object: lowercase spec keys, legacy keys inside the refs, top-level Status", () => {
    const [raw] = loadFixture("pre-1.6-assigned-identity.json");
    const { object, ok } = normalizeAzureAssignedIdentity(raw);
    expect(ok).toBe(true);
    expect(object.spec.pod).toBe("web-7d9f");
    expect(object.spec.podNamespace).toBe("default");
    expect(object.spec.azureIdentityRef?.spec.clientID).toBe("8c9d0e1f-2a3b-4c4d-9e5f-6a7b8c9d0e1f");
    expect(object.spec.azureBindingRef?.spec).toEqual({ azureIdentity: "web-identity", selector: "web" });
    expect(object.status).toEqual({ availableReplicas: 1 });
    // No state: before 1.6 there were none, and v1.8 counted such objects as assigned.
    expect(assignedIdentityState(object)).toBe(ASSIGNED_IDENTITY_STATE.Assigned);
  });

  it("prefixes problems inside the embedded identity with its path", () => {
    const input = assigned("Created");
    input.spec.azureIdentityRef = identity("apps", "id", { spec: { resourceID: "nope" } });
    const { ok, problems } = normalizeAzureAssignedIdentity(input);
    expect(ok).toBe(false);
    expect(problems.map((p) => p.path)).toEqual(["spec.azureIdentityRef.spec.resourceID"]);
  });

  it("requires pod, namespace, node and both references", () => {
    const { problems } = normalizeAzureAssignedIdentity({ spec: {} });
    expect(problems.map((p) => p.path)).toEqual([
      "spec.azureIdentityRef",
      "spec.azureBindingRef",
      "spec.pod",
      "spec.podNamespace",
      "spec.nodename",
    ]);
  });

  it("accepts a state typed in the wrong case, with a warning", () => {
    const { object, ok, problems } = normalizeAzureAssignedIdentity(assigned("assigned"));
    expect(ok).toBe(true);
    expect(object.status?.status).toBe("Assigned");
    expect(problems.map((p) => p.code)).toEqual(["coerced-value"]);
  });

  it("keeps an unknown state, refuses the object, and gives it no lifecycle state", () => {
    const { object, ok } = normalizeAzureAssignedIdentity(assigned("Deleting"));
    expect(ok).toBe(false);
    expect(object.status?.status).toBe("Deleting");
    expect(assignedIdentityState(object)).toBeUndefined();
  });

  it.each(["Created", "Assigned", "Unassigned"])("reports state %s as is", (state) => {
    expect(assignedIdentityState(assigned(state))).toBe(state);
  });
});
