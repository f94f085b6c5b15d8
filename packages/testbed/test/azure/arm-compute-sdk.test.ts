import { ComputeManagementClient } from "@azure/arm-compute";
import { ClientSecretCredential } from "@azure/identity";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AzureCloud, ManualClock, type ArmServer } from "../../src/index";
import { trustCa } from "../helpers/azure-clients";

let clock: ManualClock;
let cloud: AzureCloud;
let arm: ArmServer;
let client: ComputeManagementClient;

beforeEach(async () => {
  clock = new ManualClock(Date.now());
  cloud = await AzureCloud.create({ clock });
  arm = await cloud.startArm({ operationDurationMs: 40_000, propagationDelayMs: 0 });
  const entra = await cloud.startEntra();
  const app = cloud.addServicePrincipal({ secrets: ["mic-secret"] });
  const options = { additionalPolicies: [trustCa(cloud.ca.certPem)] };
  const credential = new ClientSecretCredential(cloud.tenantId, app.appId, "mic-secret", { ...options, authorityHost: entra.url, disableInstanceDiscovery: true });
  client = new ComputeManagementClient(credential, cloud.subscriptionId, { ...options, endpoint: arm.url });
});

afterEach(async () => {
  await cloud.close();
});

describe("ArmServer with @azure/arm-compute", () => {
  it("runs a VMSS identity update as a long-running operation the SDK polls to completion", async () => {
    cloud.addScaleSet("aks-vmss");
    const id = cloud.createUserAssignedIdentity("pod-id");
    const poller = await client.virtualMachineScaleSets.beginUpdate(
      cloud.resourceGroup,
      "aks-vmss",
      { identity: { type: "UserAssigned", userAssignedIdentities: { [id.id]: {} } } },
      { updateIntervalInMs: 1 },
    );
    await poller.poll();
    expect(poller.isDone()).toBe(false);
    clock.advance(40_000);
    const result = await poller.pollUntilDone();
    expect(result.provisioningState).toBe("Succeeded");
    expect(result.identity?.userAssignedIdentities?.[id.id]).toEqual({ principalId: id.principalId, clientId: id.clientId });
    const polls = arm.callsTo("GET", /\/operations\//);
    expect(polls.length).toBeGreaterThanOrEqual(2);
  });

  it("reads a VM and surfaces FailedIdentityOperation as a RestError", async () => {
    cloud.addVirtualMachine("node-vm");
    const vm = await client.virtualMachines.get(cloud.resourceGroup, "node-vm");
    expect(vm.vmId).toBeDefined();
    const ghost = `/subscriptions/${cloud.subscriptionId}/resourcegroups/${cloud.resourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ghost`;
    const error = await client.virtualMachines
      .beginUpdateAndWait(cloud.resourceGroup, "node-vm", { identity: { type: "UserAssigned", userAssignedIdentities: { [ghost]: {} } } }, { updateIntervalInMs: 1 })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ statusCode: 400, code: "FailedIdentityOperation" });
  });
});
