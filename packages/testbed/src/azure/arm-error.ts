import { HttpError } from "./http";

export interface ArmErrorDetail {
  code: string;
  message: string;
  target?: string;
}

/** ARM's error envelope: `{"error":{"code","message","target"?,"details"?}}`. */
export function armError(
  statusCode: number,
  code: string,
  message: string,
  options: { target?: string; details?: ArmErrorDetail[]; headers?: Record<string, string> } = {},
): HttpError {
  const error: Record<string, unknown> = { code, message };
  if (options.target !== undefined) error["target"] = options.target;
  if (options.details !== undefined) error["details"] = options.details;
  return new HttpError(statusCode, { error }, options.headers ?? {});
}

/** ARM's 404 for a resource group that does not exist (ARM checks the group before the resource in it). */
export function resourceGroupNotFound(resourceGroup: string): HttpError {
  return armError(404, "ResourceGroupNotFound", `Resource group '${resourceGroup}' could not be found.`);
}

/** ARM's 404 for a missing resource, e.g. `resourceNotFound("Microsoft.KeyVault/vaults/kv", "rg")`. */
export function resourceNotFound(typeAndName: string, resourceGroup: string): HttpError {
  return armError(404, "ResourceNotFound", `The Resource '${typeAndName}' under resource group '${resourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`);
}

/**
 * The message Azure wraps identity failures in. MIC (aad-pod-identity) extracts the offending
 * identity IDs from it with a regex matching a single-quoted, comma-separated ID list, so the
 * inner message keeps exactly that shape.
 */
export function failedIdentityOperation(resourceId: string, status: string, innerCode: string, innerMessage: string): HttpError {
  const inner = JSON.stringify({ error: { code: innerCode, message: innerMessage } });
  return armError(
    400,
    "FailedIdentityOperation",
    `Identity operation for resource '${resourceId}' failed with error 'Failed to perform resource identity operation. Status: '${status}'. Response: '${inner}'.'.`,
  );
}
