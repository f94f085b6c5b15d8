import { randomUUID } from "node:crypto";
import { ComputeResource, type ComputeKind } from "./compute-resource";
import { DEFAULT_LOCATION } from "./identity-registry";

export interface Subscription {
  readonly subscriptionId: string;
  readonly displayName: string;
  readonly tenantId: string;
}

export interface AddComputeOptions {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location?: string;
  /** Scale sets: how many instances (`sku.capacity`, instance IDs 0…n-1); default 1. */
  capacity?: number;
}

/** A resource group as ARM lists it (names keep the casing they were created with). */
export interface ResourceGroup {
  readonly subscriptionId: string;
  readonly name: string;
  readonly location: string;
}

/**
 * Subscriptions, resource groups and compute resources of the emulated cloud. Lookups are
 * case-insensitive, as in ARM.
 */
export class ComputeStore {
  readonly tenantId: string;
  readonly #subscriptions = new Map<string, Subscription>();
  readonly #resourceGroups = new Map<string, ResourceGroup>();
  readonly #resources = new Map<string, ComputeResource>();

  constructor(tenantId: string) {
    this.tenantId = tenantId;
  }

  addSubscription(options: { subscriptionId?: string; displayName?: string } = {}): Subscription {
    const subscription: Subscription = {
      subscriptionId: options.subscriptionId ?? randomUUID(),
      displayName: options.displayName ?? "testbed",
      tenantId: this.tenantId,
    };
    this.#subscriptions.set(subscription.subscriptionId.toLowerCase(), subscription);
    return subscription;
  }

  getSubscription(subscriptionId: string): Subscription | undefined {
    return this.#subscriptions.get(subscriptionId.toLowerCase());
  }

  listSubscriptions(): Subscription[] {
    return [...this.#subscriptions.values()];
  }

  addResourceGroup(subscriptionId: string, resourceGroup: string, location: string = DEFAULT_LOCATION): void {
    this.#requireSubscription(subscriptionId, "addResourceGroup");
    const key = `${subscriptionId}/${resourceGroup}`.toLowerCase();
    if (!this.#resourceGroups.has(key)) this.#resourceGroups.set(key, { subscriptionId, name: resourceGroup, location });
  }

  hasResourceGroup(subscriptionId: string, resourceGroup: string): boolean {
    return this.#resourceGroups.has(`${subscriptionId}/${resourceGroup}`.toLowerCase());
  }

  getResourceGroup(subscriptionId: string, resourceGroup: string): ResourceGroup | undefined {
    return this.#resourceGroups.get(`${subscriptionId}/${resourceGroup}`.toLowerCase());
  }

  listResourceGroups(subscriptionId: string): ResourceGroup[] {
    return [...this.#resourceGroups.values()].filter((g) => g.subscriptionId.toLowerCase() === subscriptionId.toLowerCase());
  }

  /** The VMs or scale sets of one resource group, in creation order. */
  listInResourceGroup(kind: ComputeKind, subscriptionId: string, resourceGroup: string): ComputeResource[] {
    const prefix = `${kind}/${subscriptionId}/${resourceGroup}/`.toLowerCase();
    return [...this.#resources.entries()].filter(([k]) => k.startsWith(prefix)).map(([, r]) => r);
  }

  addVirtualMachine(options: AddComputeOptions): ComputeResource {
    return this.#add("virtualMachines", options);
  }

  addScaleSet(options: AddComputeOptions): ComputeResource {
    return this.#add("virtualMachineScaleSets", options);
  }

  get(kind: ComputeKind, subscriptionId: string, resourceGroup: string, name: string): ComputeResource | undefined {
    return this.#resources.get(key(kind, subscriptionId, resourceGroup, name));
  }

  /** Looks a VM or VMSS up by its ARM resource ID. */
  getById(resourceId: string): ComputeResource | undefined {
    const match = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Compute\/(virtualMachines|virtualMachineScaleSets)\/([^/]+)$/i.exec(
      resourceId,
    );
    if (!match) return undefined;
    const kind = match[3]!.toLowerCase() === "virtualmachines" ? "virtualMachines" : "virtualMachineScaleSets";
    return this.get(kind, match[1]!, match[2]!, match[4]!);
  }

  list(): ComputeResource[] {
    return [...this.#resources.values()];
  }

  #add(kind: ComputeKind, options: AddComputeOptions): ComputeResource {
    this.#requireSubscription(options.subscriptionId, kind === "virtualMachines" ? "addVirtualMachine" : "addScaleSet");
    const k = key(kind, options.subscriptionId, options.resourceGroup, options.name);
    if (this.#resources.has(k)) throw new Error(`ComputeStore: ${kind}/${options.name} already exists in ${options.resourceGroup}`);
    this.addResourceGroup(options.subscriptionId, options.resourceGroup, options.location ?? DEFAULT_LOCATION);
    const resource = new ComputeResource(kind, options.subscriptionId, options.resourceGroup, options.name, options.location ?? DEFAULT_LOCATION, options.capacity);
    this.#resources.set(k, resource);
    return resource;
  }

  #requireSubscription(subscriptionId: string, method: string): void {
    if (!this.getSubscription(subscriptionId)) {
      throw new Error(`ComputeStore.${method}: subscription ${subscriptionId} does not exist; call addSubscription first`);
    }
  }
}

function key(kind: ComputeKind, subscriptionId: string, resourceGroup: string, name: string): string {
  return `${kind}/${subscriptionId}/${resourceGroup}/${name}`.toLowerCase();
}
