import { describe, expect, it } from "vitest";
import { azureProviderId, STARTUP_TAINT, toleratesTaint, untoleratedTaints } from "../../src/netns/kube-objects";
import { hostsFileText } from "../../src/netns/process-runner";

describe("taints and tolerations (the scheduler's rule)", () => {
  it("a NoSchedule taint blocks a pod without a matching toleration", () => {
    expect(untoleratedTaints([STARTUP_TAINT], [])).toEqual([STARTUP_TAINT]);
    expect(untoleratedTaints([STARTUP_TAINT], [{ key: "other", operator: "Exists" }])).toEqual([STARTUP_TAINT]);
  });

  it("Exists with no key tolerates everything; Equal needs the value; effect must match when given", () => {
    expect(toleratesTaint({ operator: "Exists" }, STARTUP_TAINT)).toBe(true);
    expect(toleratesTaint({ key: STARTUP_TAINT.key, operator: "Equal", value: "true" }, STARTUP_TAINT)).toBe(true);
    expect(toleratesTaint({ key: STARTUP_TAINT.key, operator: "Equal", value: "false" }, STARTUP_TAINT)).toBe(false);
    expect(toleratesTaint({ key: STARTUP_TAINT.key, value: "true" }, STARTUP_TAINT)).toBe(true);
    expect(toleratesTaint({ key: STARTUP_TAINT.key, operator: "Exists", effect: "NoExecute" }, STARTUP_TAINT)).toBe(false);
    expect(toleratesTaint({ key: "", operator: "Equal" }, STARTUP_TAINT)).toBe(false);
  });

  it("PreferNoSchedule never blocks placement", () => {
    expect(untoleratedTaints([{ key: "soft", effect: "PreferNoSchedule" }], [])).toEqual([]);
  });
});

describe("azureProviderId", () => {
  it("writes the Azure cloud provider's VMSS and VM forms", () => {
    expect(azureProviderId({ subscriptionId: "sub", resourceGroup: "MC_RG", scaleSet: "aks-pool-vmss", instanceId: 3 })).toBe(
      "azure:///subscriptions/sub/resourceGroups/mc_rg/providers/Microsoft.Compute/virtualMachineScaleSets/aks-pool-vmss/virtualMachines/3",
    );
    expect(azureProviderId({ subscriptionId: "sub", resourceGroup: "rg", vmName: "vm-0" })).toBe("azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-0");
  });
});

describe("hosts file", () => {
  it("maps loopback, the namespace's own name and every service's host names", () => {
    const text = hostsFileText({ address: "10.244.0.10", names: ["web"] }, new Map([["10.213.1.1", ["management.azure.com"]], ["10.213.1.2", ["kv.vault.azure.net", "login.microsoftonline.com"]]]));
    expect(text.split("\n")).toEqual([
      "127.0.0.1\tlocalhost",
      "::1\tlocalhost ip6-localhost ip6-loopback",
      "10.244.0.10\tweb",
      "10.213.1.1\tmanagement.azure.com",
      "10.213.1.2\tkv.vault.azure.net login.microsoftonline.com",
      "",
    ]);
  });
});
