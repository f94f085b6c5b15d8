import type { AzureAssignedIdentity } from "@podidentity/api";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { classifyArmFailure } from "../src/arm/arm-failure";
import { ArmRequestError } from "../src/errors";
import { Harness, until } from "./helpers/harness";

const VMSS = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/pool";
const ghostId = (name: string): string => `/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${name}`;

function armError(statusCode: number, armCode: string, armMessage: string, failedIdentityIds: string[] = []): ArmRequestError {
  return new ArmRequestError(`vmss_update: ARM answered ${statusCode} ${armCode}: ${armMessage}`, { statusCode, armCode, armMessage, operation: "vmss_update", failedIdentityIds });
}

describe("classifyArmFailure", () => {
  const notFound = `Identity operation for resource '${VMSS}' failed with error 'Failed to perform resource identity operation. Status: 'NotFound'. Response: '{"error":{"code":"NotFound","message":"Resource '${ghostId("ghost")}' was not found."}}'.'.`;
  const linked =
    `The client 'c' with object id 'o' has permission to perform action 'Microsoft.Compute/virtualMachineScaleSets/write' on scope '${VMSS}'; however, it does not have permission to perform action ` +
    `'Microsoft.ManagedIdentity/userAssignedIdentities/assign/action' on the linked scope(s) '${ghostId("other")}' or the linked scope(s) are invalid.`;
  const table: Array<[string, ArmRequestError | Error, boolean]> = [
    ["FailedIdentityOperation, identity not found", armError(400, "FailedIdentityOperation", notFound, [ghostId("ghost")]), true],
    ["FailedIdentityOperation, identity service 500", armError(400, "FailedIdentityOperation", notFound.replace("'NotFound'", "'InternalServerError'"), [ghostId("ghost")]), false],
    ["FailedIdentityOperation, client closed (499)", armError(400, "FailedIdentityOperation", notFound.replace("'NotFound'", "'499'"), [ghostId("ghost")]), false],
    ["LinkedAuthorizationFailed (no assign/action on the identity)", armError(403, "LinkedAuthorizationFailed", linked, [ghostId("other")]), true],
    ["AuthorizationFailed (no write on the VMSS)", armError(403, "AuthorizationFailed", `The client 'c' does not have authorization to perform action 'Microsoft.Compute/virtualMachineScaleSets/write' over scope '${VMSS}'.`), true],
    ["LinkedInvalidPropertyId (malformed identity ID)", armError(400, "LinkedInvalidPropertyId", "Property id '/subscriptions/s/bad' at path 'identity.userAssignedIdentities' is invalid."), true],
    ["429 throttled", armError(429, "TooManyRequests", "Retry after 20 seconds"), false],
    ["409 conflict", armError(409, "OperationNotAllowed", "Another operation is in progress"), false],
    ["500", armError(500, "InternalServerError", "An internal error occurred"), false],
    ["503", armError(503, "ServiceUnavailable", "Try again"), false],
    ["long-running operation failed", new ArmRequestError("vmss_update: long-running operation Failed: InternalExecutionError: retry later", { statusCode: 200, armCode: "InternalExecutionError", armMessage: "retry later", operation: "vmss_update", failedIdentityIds: [] }), false],
    ["network", Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }), false],
  ];
  for (const [what, error, permanent] of table) {
    it(`${what}: ${permanent ? "permanent" : "transient"}`, () => {
      expect(classifyArmFailure(error).permanent).toBe(permanent);
    });
  }

  it("keeps ARM's own code and message (without MIC's prefix) and the identities it names", () => {
    const failure = classifyArmFailure(armError(400, "FailedIdentityOperation", notFound, [ghostId("ghost")]));
    expect(failure).toEqual({ permanent: true, code: "FailedIdentityOperation", message: notFound, identityIds: [ghostId("ghost")] });
    expect(classifyArmFailure(Object.assign(new Error("x"), { code: "ECONNRESET" })).code).toBe("ECONNRESET");
  });

  it("names the malformed ID of LinkedInvalidPropertyId so only that identity is set aside", () => {
    const failure = classifyArmFailure(armError(400, "LinkedInvalidPropertyId", "Property id '/subscriptions/S/Bad' at path 'identity.userAssignedIdentities' is invalid."));
    expect(failure.identityIds).toEqual(["/subscriptions/s/bad"]);
  });
});

describe("an AzureIdentity naming an identity that does not exist", () => {
  let h: Harness;
  beforeEach(async () => {
    h = await Harness.start();
  });
  afterEach(async () => {
    await h.close();
  });

  const assignedObject = (name: string): AzureAssignedIdentity | undefined =>
    h.kube.getObject("azureassignedidentities.aadpodidentity.k8s.io", "default", name) as unknown as AzureAssignedIdentity | undefined;
  const failedPatches = (): number[] => h.arm.calls.filter((c) => c.method === "PATCH" && c.status === 400).map((c) => c.atMs);

  /** A resource ID in the cloud's format for an identity that does not exist (yet). */
  function missingIdentityId(name: string): string {
    return h.identity(`${name}-format`).id.replace(`/${name}-format`, `/${name}`);
  }

  it("writes ARM's code and message on status.error and a Warning on the pod, keeps Created, retries with doubling backoff, and clears the error once it succeeds", async () => {
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    const id = missingIdentityId("ghost");
    h.azureIdentity("ghost", { type: 0, resourceID: id, clientID: "00000000-0000-0000-0000-00000000dead" });
    h.binding("ghost", "ghost", "web");
    h.pod("web-1", { selector: "web", node: "node-0" });
    const mic = await h.startMic({ identityBackoffInitialMs: 300, identityBackoffMaxMs: 2_000 });

    await until(() => assignedObject("web-1-default-ghost")?.status?.error !== undefined, "status.error written");
    const failed = assignedObject("web-1-default-ghost")!;
    expect(failed.status?.status).toBe("Created");
    // MIC sends canonical (lower-case) IDs; ARM's message quotes the ID as sent.
    expect(failed.status?.error).toMatchObject({ code: "FailedIdentityOperation", message: expect.stringContaining(`Resource '${id.toLowerCase()}' was not found.`) });
    expect(failed.status?.error?.lastTransitionTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    await mic.flushEvents();
    await until(() => h.events({ kind: "Pod", name: "web-1", reason: "binding apply error" }).some((e) => e.type === "Warning" && e.message.includes("was not found")), "Warning on the pod");

    // Never sticky: it keeps trying, each wait at least double the last (300, 600, 1200 ms, then the 2 s cap).
    await until(() => failedPatches().length >= 5, "five failed PATCHes", 20_000);
    const at = failedPatches();
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    [300, 600, 1_200, 2_000].forEach((backoff, i) => expect(gaps[i]).toBeGreaterThanOrEqual(backoff - 5));

    // The identity is created in Azure: the next retry assigns it and the error goes away.
    h.cloud.createUserAssignedIdentity("ghost");
    await until(() => h.assignedState("default", "web-1-default-ghost") === "Assigned", "Assigned", 20_000);
    expect(assignedObject("web-1-default-ghost")!.status?.error).toBeUndefined();
    expect(h.held(vmss)).toEqual([id.toLowerCase()]);
  });

  it("retries at once when the AzureIdentity is edited, not after its backoff", async () => {
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    const id = missingIdentityId("late");
    h.azureIdentity("late", { type: 0, resourceID: id, clientID: "00000000-0000-0000-0000-00000000dead" });
    h.binding("late", "late", "web");
    h.pod("web-1", { selector: "web", node: "node-0" });
    // A backoff far longer than the test: only the edit can make MIC try again.
    await h.startMic({ identityBackoffInitialMs: 600_000, identityBackoffMaxMs: 600_000 });
    await until(() => assignedObject("web-1-default-late")?.status?.error?.code === "FailedIdentityOperation", "status.error written");
    expect(failedPatches()).toHaveLength(1);

    h.cloud.createUserAssignedIdentity("late");
    h.kube.patchObject("azureidentities.aadpodidentity.k8s.io", "default", "late", { metadata: { annotations: { "example.com/fixed": "identity created" } } });
    await until(() => h.assignedState("default", "web-1-default-late") === "Assigned", "Assigned after the edit");
    expect(assignedObject("web-1-default-late")!.status?.error).toBeUndefined();
    expect(h.patches(vmss)).toBe(2);
  });

  it("pointing the AzureIdentity at an existing identity replaces the failed assignment with a working one", async () => {
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    h.azureIdentity("app", { type: 0, resourceID: missingIdentityId("typo"), clientID: "00000000-0000-0000-0000-00000000dead" });
    h.binding("app", "app", "web");
    h.pod("web-1", { selector: "web", node: "node-0" });
    await h.startMic({ identityBackoffInitialMs: 600_000, identityBackoffMaxMs: 600_000 });
    await until(() => assignedObject("web-1-default-app")?.status?.error !== undefined, "status.error written");

    const real = h.identity("real");
    h.kube.patchObject("azureidentities.aadpodidentity.k8s.io", "default", "app", { spec: { resourceID: real.id, clientID: real.clientId } });
    await until(() => h.assignedState("default", "web-1-default-app") === "Assigned" && assignedObject("web-1-default-app")?.spec.azureIdentityRef?.spec.resourceID === real.id, "the new assignment Assigned");
    expect(assignedObject("web-1-default-app")!.status?.error).toBeUndefined();
    expect(h.held(vmss)).toEqual([real.id.toLowerCase()]);
  });
});
