/** A VM or VMSS that holds user-assigned identities for the nodes on it. */
export interface ComputeTarget {
  /** Canonical (lower-case) resource ID: the key of queues, budgets and ownership records. */
  readonly key: string;
  /** Resource ID with the casing it was read in, for URLs. */
  readonly resourceId: string;
  readonly subscriptionId: string;
  readonly resourceGroup: string;
  readonly kind: "virtualMachines" | "virtualMachineScaleSets";
  readonly name: string;
}

const PROVIDER_ID =
  /^azure:\/\/\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Compute\/(virtualMachineScaleSets|virtualMachines)\/([^/]+)(?:\/virtualMachines\/[^/]+)?\/?$/i;

export function computeTarget(subscriptionId: string, resourceGroup: string, kind: ComputeTarget["kind"], name: string): ComputeTarget {
  const resourceId = `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Compute/${kind}/${name}`;
  return { key: resourceId.toLowerCase(), resourceId, subscriptionId, resourceGroup, kind, name };
}

/**
 * Where a node's identities live, from its `spec.providerID`: a VMSS instance
 * (`azure:///subscriptions/S/resourceGroups/G/providers/Microsoft.Compute/virtualMachineScaleSets/N/virtualMachines/3`)
 * maps to its scale set, a VM to itself. v1.8 used the node name as the VM name with the resource group from
 * azure.json; that is the fallback when the node has no Azure provider ID.
 */
export function nodeComputeTarget(
  node: { metadata?: { name?: string }; spec?: { providerID?: string } },
  fallback: { subscriptionId?: string; resourceGroup?: string },
): ComputeTarget | undefined {
  const providerId = node.spec?.providerID ?? "";
  const m = PROVIDER_ID.exec(providerId);
  if (m) {
    const kind = m[3]!.toLowerCase() === "virtualmachinescalesets" ? "virtualMachineScaleSets" : "virtualMachines";
    return computeTarget(m[1]!, m[2]!, kind, m[4]!);
  }
  const name = node.metadata?.name;
  if (providerId === "" && name && fallback.subscriptionId && fallback.resourceGroup) {
    return computeTarget(fallback.subscriptionId, fallback.resourceGroup, "virtualMachines", name);
  }
  return undefined;
}

/** Parses a target key or resource ID back (annotations store the resource ID). */
export function parseComputeTarget(resourceId: string): ComputeTarget | undefined {
  const m = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Compute\/(virtualMachineScaleSets|virtualMachines)\/([^/]+)$/i.exec(resourceId);
  if (!m) return undefined;
  const kind = m[3]!.toLowerCase() === "virtualmachinescalesets" ? "virtualMachineScaleSets" : "virtualMachines";
  return computeTarget(m[1]!, m[2]!, kind, m[4]!);
}
