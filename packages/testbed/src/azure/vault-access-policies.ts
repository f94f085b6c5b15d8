import { armError } from "./arm-error";
import type { KeyVaultServer, SecretPermission } from "./keyvault-server";

export type AccessPolicyOperation = "add" | "replace" | "remove";

/** ARM accepts these secret permissions; the emulator enforces get, list and set. */
const ARM_SECRET_PERMISSIONS = new Set(["get", "list", "set", "delete", "backup", "restore", "recover", "purge", "all"]);
const ENFORCED: readonly SecretPermission[] = ["get", "list", "set"];

interface PolicyEntry {
  objectId: string;
  secrets: SecretPermission[];
}

/**
 * `PUT …/Microsoft.KeyVault/vaults/{vault}/accessPolicies/{add|replace|remove}`: the management-plane
 * way to grant an identity access, so a running testbed can be configured over the wire.
 */
export function applyAccessPolicies(vault: KeyVaultServer, operation: string, tenantId: string, body: unknown): Record<string, unknown> {
  const op = operation.toLowerCase();
  if (op !== "add" && op !== "replace" && op !== "remove") {
    throw armError(400, "BadRequest", `The access policy operation kind '${operation}' is invalid. Allowed values are 'add', 'replace', 'remove'.`);
  }
  const entries = parseEntries(body, tenantId);
  for (const entry of entries) {
    const current = new Set(vault.accessPolicy(entry.objectId));
    if (op === "replace") vault.setAccessPolicy(entry.objectId, entry.secrets);
    else if (op === "add") vault.setAccessPolicy(entry.objectId, [...new Set([...current, ...entry.secrets])]);
    else {
      for (const p of entry.secrets) current.delete(p);
      if (current.size === 0 || entry.secrets.length === 0) vault.removeAccessPolicy(entry.objectId);
      else vault.setAccessPolicy(entry.objectId, [...current]);
    }
  }
  return { type: "Microsoft.KeyVault/vaults/accessPolicies", properties: { accessPolicies: vault.accessPolicies() } };
}

function parseEntries(body: unknown, tenantId: string): PolicyEntry[] {
  const policies = (body as { properties?: { accessPolicies?: unknown } } | undefined)?.properties?.accessPolicies;
  if (!Array.isArray(policies)) {
    throw armError(400, "BadRequest", "The request must contain 'properties.accessPolicies' as an array.");
  }
  return policies.map((raw: unknown, index) => {
    const policy = raw as { tenantId?: unknown; objectId?: unknown; permissions?: { secrets?: unknown } } | null;
    if (!policy || typeof policy.objectId !== "string" || policy.objectId.length === 0) {
      throw armError(400, "BadRequest", `accessPolicies[${index}].objectId is required.`);
    }
    if (typeof policy.tenantId !== "string" || policy.tenantId.toLowerCase() !== tenantId.toLowerCase()) {
      throw armError(400, "BadRequest", `accessPolicies[${index}].tenantId must be the vault's tenant '${tenantId}'.`);
    }
    const secrets = policy.permissions?.secrets ?? [];
    if (!Array.isArray(secrets) || secrets.some((p) => typeof p !== "string" || !ARM_SECRET_PERMISSIONS.has(p.toLowerCase()))) {
      throw armError(400, "BadRequest", `accessPolicies[${index}].permissions.secrets has an invalid value; allowed: ${[...ARM_SECRET_PERMISSIONS].join(", ")}.`);
    }
    const lower = (secrets as string[]).map((p) => p.toLowerCase());
    const enforced = lower.includes("all") ? [...ENFORCED] : ENFORCED.filter((p) => lower.includes(p));
    return { objectId: policy.objectId, secrets: enforced };
  });
}
