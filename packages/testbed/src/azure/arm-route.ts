import type { ComputeKind } from "./compute-resource";
import { pathSegments } from "./http";

/** The ARM resources the emulator serves, parsed from a request path (segment names compare case-insensitively, as in ARM). */
export type ArmRoute =
  | { kind: "subscriptions" }
  | { kind: "subscription"; subscriptionId: string }
  | { kind: "resourceGroups"; subscriptionId: string }
  | { kind: "resourceGroup"; subscriptionId: string; resourceGroup: string }
  | { kind: "computeList"; subscriptionId: string; resourceGroup: string; computeKind: ComputeKind }
  | { kind: "computeChild"; subscriptionId: string; resourceGroup: string; computeKind: ComputeKind; name: string; child: "instanceView" | "virtualMachines"; instanceId?: string }
  | { kind: "compute"; subscriptionId: string; resourceGroup: string; computeKind: ComputeKind; name: string }
  | { kind: "operation"; subscriptionId: string; location: string; operationId: string }
  | { kind: "identity"; subscriptionId: string; resourceGroup: string; name: string }
  | { kind: "accessPolicies"; subscriptionId: string; resourceGroup: string; vault: string; operation: string };

const COMPUTE_KINDS: Record<string, ComputeKind> = { virtualmachines: "virtualMachines", virtualmachinescalesets: "virtualMachineScaleSets" };

export function parseArmRoute(pathname: string): ArmRoute | undefined {
  const parts = pathSegments(pathname);
  if (!parts) return undefined;
  const lower = parts.map((p) => p.toLowerCase());
  if (lower[0] !== "subscriptions") return undefined;
  if (parts.length === 1) return { kind: "subscriptions" };
  const subscriptionId = parts[1]!;
  if (parts.length === 2) return { kind: "subscription", subscriptionId };
  if (parts.length === 3 && lower[2] === "resourcegroups") return { kind: "resourceGroups", subscriptionId };
  if (parts.length === 4 && lower[2] === "resourcegroups") return { kind: "resourceGroup", subscriptionId, resourceGroup: parts[3]! };
  if (parts.length === 8 && lower[2] === "providers" && lower[3] === "microsoft.compute" && lower[4] === "locations" && lower[6] === "operations") {
    return { kind: "operation", subscriptionId, location: parts[5]!, operationId: parts[7]! };
  }
  if (lower[2] !== "resourcegroups" || lower[4] !== "providers") return undefined;
  const resourceGroup = parts[3]!;
  const computeKind = lower[5] === "microsoft.compute" ? COMPUTE_KINDS[lower[6] ?? ""] : undefined;
  if (computeKind && parts.length === 7) return { kind: "computeList", subscriptionId, resourceGroup, computeKind };
  if (computeKind && parts.length === 9 && lower[8] === "instanceview") {
    return { kind: "computeChild", subscriptionId, resourceGroup, computeKind, name: parts[7]!, child: "instanceView" };
  }
  if (computeKind === "virtualMachineScaleSets" && (parts.length === 9 || parts.length === 10 || parts.length === 11) && lower[8] === "virtualmachines") {
    if (parts.length === 11 && lower[10] !== "instanceview") return undefined;
    return {
      kind: "computeChild",
      subscriptionId,
      resourceGroup,
      computeKind,
      name: parts[7]!,
      child: parts.length === 11 ? "instanceView" : "virtualMachines",
      ...(parts.length >= 10 && { instanceId: parts[9]! }),
    };
  }
  if (parts.length === 8) {
    const name = parts[7]!;
    if (lower[5] === "microsoft.compute" && lower[6] === "virtualmachines") return { kind: "compute", subscriptionId, resourceGroup, computeKind: "virtualMachines", name };
    if (lower[5] === "microsoft.compute" && lower[6] === "virtualmachinescalesets") {
      return { kind: "compute", subscriptionId, resourceGroup, computeKind: "virtualMachineScaleSets", name };
    }
    if (lower[5] === "microsoft.managedidentity" && lower[6] === "userassignedidentities") return { kind: "identity", subscriptionId, resourceGroup, name };
  }
  if (parts.length === 10 && lower[5] === "microsoft.keyvault" && lower[6] === "vaults" && lower[8] === "accesspolicies") {
    return { kind: "accessPolicies", subscriptionId, resourceGroup, vault: parts[7]!, operation: parts[9]! };
  }
  return undefined;
}
