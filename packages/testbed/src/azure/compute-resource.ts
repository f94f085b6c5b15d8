import { randomUUID } from "node:crypto";
import { armError, failedIdentityOperation } from "./arm-error";
import type { IdentityRegistry } from "./identity-registry";

export type ComputeKind = "virtualMachines" | "virtualMachineScaleSets";
export type IdentityType = "None" | "SystemAssigned" | "UserAssigned" | "SystemAssigned, UserAssigned";

/** Azure refuses more user-assigned identity entries than this in one request. */
export const MAX_USER_ASSIGNED_IDENTITIES_PER_REQUEST = 150;

const IDENTITY_TYPES: readonly IdentityType[] = ["None", "SystemAssigned", "UserAssigned", "SystemAssigned, UserAssigned"];
const USER_ASSIGNED_ID_PATTERN =
  /^\/subscriptions\/[^/]+\/resourcegroups\/[^/]+\/providers\/Microsoft\.ManagedIdentity\/userAssignedIdentities\/[^/]+$/i;

/** One user-assigned identity as the VM/VMSS holds it: bound to the identity's IDs at assignment time. */
export interface UserAssignment {
  /** The resource ID as first sent (ARM keeps the caller's casing). */
  readonly resourceId: string;
  readonly clientId: string;
  readonly principalId: string;
  /** When IMDS starts issuing tokens for it (operation end + propagation delay). */
  readonly effectiveAtMs: number;
}

export interface SystemAssignment {
  readonly principalId: string;
  /** The system identity's application (client) ID, as its tokens carry in `appid`. */
  readonly clientId: string;
  readonly tenantId: string;
  readonly effectiveAtMs: number;
}

export interface PatchTiming {
  /** When the change becomes visible to IMDS. */
  effectiveAtMs: number;
}

export interface PatchResult {
  /** Identities that were requested but do not exist; when any, nothing was applied. */
  notFound: string[];
  changed: boolean;
}

/** A virtual machine or scale set with the identity block ARM manages. */
export class ComputeResource {
  readonly kind: ComputeKind;
  readonly subscriptionId: string;
  readonly resourceGroup: string;
  readonly name: string;
  readonly location: string;
  readonly vmId = randomUUID();
  identityType: IdentityType = "None";
  systemAssigned: SystemAssignment | undefined;
  readonly userAssigned = new Map<string, UserAssignment>();
  /** provisioningState is "Updating" until this clock time. */
  busyUntilMs = 0;
  /** Scale sets: instance IDs ("0", "1", …), as `virtualMachines` lists them; empty for a VM. */
  readonly instanceIds: readonly string[];

  constructor(kind: ComputeKind, subscriptionId: string, resourceGroup: string, name: string, location: string, capacity = 1) {
    if (!(Number.isInteger(capacity) && capacity >= 0 && capacity <= 1_000)) throw new RangeError(`ComputeResource: capacity must be an integer 0-1000, got ${capacity}`);
    this.kind = kind;
    this.subscriptionId = subscriptionId;
    this.resourceGroup = resourceGroup;
    this.name = name;
    this.location = location;
    this.instanceIds = kind === "virtualMachineScaleSets" ? Array.from({ length: capacity }, (_, i) => String(i)) : [];
  }

  get id(): string {
    return `/subscriptions/${this.subscriptionId}/resourceGroups/${this.resourceGroup}/providers/Microsoft.Compute/${this.kind}/${this.name}`;
  }

  /**
   * Applies an `identity` PATCH with Azure's semantics: `{}` adds, `null` removes, the type
   * decides whether system- and user-assigned identities are kept. Any unknown identity fails the
   * whole request (reported in `notFound`) and nothing is applied.
   */
  applyIdentityPatch(patch: unknown, registry: IdentityRegistry, timing: PatchTiming): PatchResult {
    if (patch === null || typeof patch !== "object" || Array.isArray(patch)) {
      throw armError(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized: 'Error converting value to type identity. Path 'identity'.'.");
    }
    const body = patch as Record<string, unknown>;
    if (typeof body["type"] !== "string") {
      throw armError(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized: 'Required property 'type' not found in JSON. Path 'identity'.'.");
    }
    const type = parseIdentityType(body["type"]);
    const entries = parseUserAssignedMap(body["userAssignedIdentities"]);
    if (entries.length > MAX_USER_ASSIGNED_IDENTITIES_PER_REQUEST) {
      throw failedIdentityOperation(
        this.id,
        "BadRequest",
        "BadRequest",
        `User Assigned Identities Number '${entries.length}' Assign exceed limit '${MAX_USER_ASSIGNED_IDENTITIES_PER_REQUEST}' in one request.`,
      );
    }
    const wantsUser = type === "UserAssigned" || type === "SystemAssigned, UserAssigned";
    const adds = entries.filter(([, value]) => value !== null).map(([id]) => id);
    const removes = entries.filter(([, value]) => value === null).map(([id]) => id);
    if (!wantsUser && adds.length > 0) {
      throw armError(
        400,
        "InvalidParameter",
        `Identity type '${type}' cannot be used with user assigned identities; use 'UserAssigned' or 'SystemAssigned, UserAssigned'.`,
        { target: "identity.type" },
      );
    }

    const next = new Map(wantsUser ? this.userAssigned : []);
    for (const id of removes) next.delete(id.toLowerCase());
    const notFound: string[] = [];
    for (const id of adds) {
      const key = id.toLowerCase();
      // An entry held with stale IDs (identity deleted and re-created) stays stale until removed, as in Azure.
      if (next.has(key)) continue;
      const identity = registry.getUserAssignedIdentity(id);
      if (!identity) {
        notFound.push(id);
        continue;
      }
      next.set(key, { resourceId: id, clientId: identity.clientId, principalId: identity.principalId, effectiveAtMs: timing.effectiveAtMs });
    }

    // An unknown identity fails the whole request and nothing is applied, as in Azure (aad-pod-identity's chart:
    // "if a single identity contains an error or is invalid, then the entire operation fails").
    if (notFound.length > 0) return { notFound, changed: false };
    if (wantsUser && next.size === 0) {
      throw armError(400, "InvalidParameter", "At least one user assigned identity is required when identity type is 'UserAssigned'.", {
        target: "identity.userAssignedIdentities",
      });
    }

    const before = this.#snapshot();
    const wantsSystem = type === "SystemAssigned" || type === "SystemAssigned, UserAssigned";
    if (wantsSystem && !this.systemAssigned) {
      this.systemAssigned = {
        principalId: randomUUID(),
        clientId: randomUUID(),
        tenantId: registry.tenantId,
        effectiveAtMs: timing.effectiveAtMs,
      };
    } else if (!wantsSystem) {
      this.systemAssigned = undefined;
    }
    this.userAssigned.clear();
    for (const [key, value] of next) this.userAssigned.set(key, value);
    this.identityType = type;
    return { notFound, changed: before !== this.#snapshot() };
  }

  /**
   * A newer operation preempted the running one: identities that were waiting for it take effect when the newer
   * one ends instead.
   */
  deferPending(nowMs: number, effectiveAtMs: number): void {
    for (const [key, a] of this.userAssigned) if (a.effectiveAtMs > nowMs && a.effectiveAtMs < effectiveAtMs) this.userAssigned.set(key, { ...a, effectiveAtMs });
    if (this.systemAssigned && this.systemAssigned.effectiveAtMs > nowMs && this.systemAssigned.effectiveAtMs < effectiveAtMs) this.systemAssigned = { ...this.systemAssigned, effectiveAtMs };
  }

  /** The error Azure answers when some requested identities do not exist (nothing of the request is applied). */
  notFoundError(ids: readonly string[]): Error {
    return failedIdentityOperation(this.id, "NotFound", "NotFound", `Resource '${ids.join(",")}' was not found.`);
  }

  #snapshot(): string {
    return JSON.stringify([this.identityType, this.systemAssigned?.principalId, [...this.userAssigned.keys()].sort()]);
  }

  /** The `identity` block as ARM returns it; stale assignments show null IDs. */
  identityJson(registry: IdentityRegistry): Record<string, unknown> | undefined {
    if (this.identityType === "None") return undefined;
    const json: Record<string, unknown> = { type: this.identityType };
    if (this.systemAssigned) {
      json["principalId"] = this.systemAssigned.principalId;
      json["tenantId"] = this.systemAssigned.tenantId;
    }
    if (this.userAssigned.size > 0) {
      const map: Record<string, { principalId: string | null; clientId: string | null }> = {};
      for (const assignment of this.userAssigned.values()) {
        const live = isLive(assignment, registry);
        map[assignment.resourceId] = {
          principalId: live ? assignment.principalId : null,
          clientId: live ? assignment.clientId : null,
        };
      }
      json["userAssignedIdentities"] = map;
    }
    return json;
  }
}

/** True when the assignment still points at the identity that exists under its resource ID. */
export function isLive(assignment: UserAssignment, registry: IdentityRegistry): boolean {
  return registry.getUserAssignedIdentity(assignment.resourceId)?.clientId === assignment.clientId;
}

function parseIdentityType(value: string): IdentityType {
  const normalized = value.replace(/\s+/g, "").toLowerCase();
  const match = IDENTITY_TYPES.find((t) => t.replace(/\s+/g, "").toLowerCase() === normalized);
  if (!match) {
    throw armError(
      400,
      "InvalidParameter",
      `The value '${value}' of parameter 'identity.type' is invalid. Allowed values are 'None', 'SystemAssigned', 'UserAssigned', 'SystemAssigned, UserAssigned'.`,
      { target: "identity.type" },
    );
  }
  return match;
}

function parseUserAssignedMap(value: unknown): Array<[string, object | null]> {
  if (value === undefined || value === null) return [];
  if (typeof value !== "object" || Array.isArray(value)) {
    throw armError(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized: 'Unexpected value for userAssignedIdentities. Path 'identity.userAssignedIdentities'.'.");
  }
  const entries = Object.entries(value as Record<string, unknown>);
  for (const [id, entry] of entries) {
    if (!USER_ASSIGNED_ID_PATTERN.test(id)) {
      throw armError(400, "LinkedInvalidPropertyId", `Property id '${id}' at path 'identity.userAssignedIdentities' is invalid. Expect fully qualified resource Id that start with '/subscriptions/{subscriptionId}' or '/providers/{resourceProviderNamespace}/'.`);
    }
    if (entry !== null && (typeof entry !== "object" || Array.isArray(entry))) {
      throw armError(400, "InvalidRequestContent", `The request content was invalid and could not be deserialized: 'Unexpected value for '${id}'. Path 'identity.userAssignedIdentities'.'.`);
    }
  }
  return entries as Array<[string, object | null]>;
}
