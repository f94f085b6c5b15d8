import { FieldReader, isPlainObject } from "./field-reader";
import { isValidIdentityResourceId, tryParseIdentityResourceId } from "./identity-resource-id";
import {
  AZURE_IDENTITY_SPEC_SPELLINGS,
  REPLICA_STATUS_SPELLINGS,
  SECRET_REFERENCE_SPELLINGS,
  STATUS_ROOT_SPELLINGS,
} from "./legacy-keys";
import { API_GROUP_VERSION } from "./names";
import { normalized, type Normalized, type NormalizationProblem } from "./normalization-problem";
import type { KubeList, ObjectMeta } from "./object-meta";
import { AZURE_IDENTITY_NAMES } from "./resource-kinds";

/** AzureIdentity `spec.type` values (v1.8's IdentityType). */
export const IDENTITY_TYPE = {
  /** User-assigned managed identity: `resourceID` + `clientID`, token from IMDS. */
  UserAssignedMSI: 0,
  /** Service principal with a client secret: `tenantID`, `clientID`, `clientPassword`. */
  ServicePrincipal: 1,
  /** Service principal with a PKCS#12 certificate in the secret's `certificate` and `password` keys. */
  ServicePrincipalCertificate: 2,
} as const;
export type IdentityType = (typeof IDENTITY_TYPE)[keyof typeof IDENTITY_TYPE];

/** v1.8's authority when `adEndpoint` is empty. Normalisation does not fill it in, so objects round-trip. */
export const DEFAULT_AD_ENDPOINT = "https://login.microsoftonline.com/";

/** core/v1 SecretReference. */
export interface SecretReference {
  name?: string;
  namespace?: string;
}

export interface AzureIdentitySpec {
  /**
   * 0, 1 or 2 (IDENTITY_TYPE) once normalised; absent in a manifest means 0, as in v1.8. Anything else is kept
   * as written (a number, or text such as `"abc"`) and reported, never replaced by a default.
   */
  type: number | string;
  resourceID?: string;
  clientID?: string;
  clientPassword?: SecretReference;
  tenantID?: string;
  auxiliaryTenantIDs?: string[];
  adResourceID?: string;
  adEndpoint?: string;
  replicas?: number;
}

export interface AzureIdentityStatus {
  availableReplicas?: number;
}

export interface AzureIdentity {
  apiVersion: typeof API_GROUP_VERSION;
  kind: typeof AZURE_IDENTITY_NAMES.kind;
  metadata: ObjectMeta;
  spec: AzureIdentitySpec;
  status?: AzureIdentityStatus;
}

export type AzureIdentityList = KubeList<AzureIdentity>;

function readSecretReference(reader: FieldReader): SecretReference | undefined {
  const ref = reader.child("clientPassword", SECRET_REFERENCE_SPELLINGS);
  const name = ref.string("name");
  const namespace = ref.string("namespace");
  if (name === undefined && namespace === undefined) return undefined;
  return { ...(name !== undefined && { name }), ...(namespace !== undefined && { namespace }) };
}

/** Reads an AzureIdentity written with any of the spellings of legacy-keys.ts; see normalizeAzureIdentity. */
export function readAzureIdentity(input: unknown, problems: NormalizationProblem[], path = ""): AzureIdentity {
  const source = isPlainObject(input) ? input : {};
  const root = FieldReader.of(input, path, STATUS_ROOT_SPELLINGS, problems);
  const spec = root.child("spec", AZURE_IDENTITY_SPEC_SPELLINGS);
  const out: AzureIdentitySpec = { type: spec.intOrString("type") ?? IDENTITY_TYPE.UserAssignedMSI };
  const resourceID = spec.string("resourceID");
  if (resourceID !== undefined) out.resourceID = resourceID;
  const clientID = spec.string("clientID");
  if (clientID !== undefined) out.clientID = clientID;
  const clientPassword = readSecretReference(spec);
  if (clientPassword !== undefined) out.clientPassword = clientPassword;
  const tenantID = spec.string("tenantID");
  if (tenantID !== undefined) out.tenantID = tenantID;
  const auxiliaryTenantIDs = spec.stringList("auxiliaryTenantIDs");
  if (auxiliaryTenantIDs !== undefined && auxiliaryTenantIDs.length > 0) out.auxiliaryTenantIDs = auxiliaryTenantIDs;
  const adResourceID = spec.string("adResourceID");
  if (adResourceID !== undefined) out.adResourceID = adResourceID;
  const adEndpoint = spec.string("adEndpoint");
  if (adEndpoint !== undefined) out.adEndpoint = adEndpoint;
  const replicas = spec.integer("replicas");
  if (replicas !== undefined) out.replicas = replicas;

  const identity: AzureIdentity = {
    apiVersion: API_GROUP_VERSION,
    kind: AZURE_IDENTITY_NAMES.kind,
    metadata: isPlainObject(source.metadata) ? { ...(source.metadata as ObjectMeta) } : {},
    spec: out,
  };
  const availableReplicas = root.child("status", REPLICA_STATUS_SPELLINGS).integer("availableReplicas");
  if (availableReplicas !== undefined) identity.status = { availableReplicas };
  return identity;
}

/**
 * What makes an AzureIdentity unusable, from the normalised object alone (so NMI and MIC agree on it):
 * an unknown type; for type 0 a missing or (per v1.8's pattern) invalid resourceID, or a missing clientID —
 * without one, the IMDS request would silently fall back to the node's own identity; for types 1 and 2 a
 * missing tenantID, clientID or complete clientPassword reference.
 */
export function validateAzureIdentity(identity: AzureIdentity, path = ""): NormalizationProblem[] {
  const at = (field: string): string => (path === "" ? `spec.${field}` : `${path}.spec.${field}`);
  const problems: NormalizationProblem[] = [];
  const error = (code: NormalizationProblem["code"], field: string, message: string): void => {
    problems.push({ code, severity: "error", path: at(field), message });
  };
  const { spec } = identity;
  switch (spec.type) {
    case IDENTITY_TYPE.UserAssignedMSI: {
      if (spec.resourceID === undefined) {
        error("missing-resource-id", "resourceID", "a user-assigned identity (type 0) needs resourceID (`az identity show --query id -o tsv`)");
      } else if (!isValidIdentityResourceId(spec.resourceID)) {
        error(
          "invalid-resource-id",
          "resourceID",
          `"${spec.resourceID}" is not a user-assigned identity resource ID: expected /subscriptions/<subscription>/resourcegroups/<group>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`,
        );
      } else if (tryParseIdentityResourceId(spec.resourceID) === undefined) {
        problems.push({
          code: "malformed-resource-id",
          severity: "warning",
          path: at("resourceID"),
          message: `"${spec.resourceID}" passes v1.8's check but has extra or empty path segments; ARM may reject it`,
        });
      }
      if (spec.clientID === undefined) {
        error("missing-client-id", "clientID", "a user-assigned identity (type 0) needs clientID (`az identity show --query clientId -o tsv`)");
      }
      break;
    }
    case IDENTITY_TYPE.ServicePrincipal:
    case IDENTITY_TYPE.ServicePrincipalCertificate: {
      const kind = spec.type === IDENTITY_TYPE.ServicePrincipal ? "service principal (type 1)" : "service principal certificate (type 2)";
      if (spec.tenantID === undefined) error("missing-tenant-id", "tenantID", `a ${kind} needs tenantID`);
      if (spec.clientID === undefined) error("missing-client-id", "clientID", `a ${kind} needs clientID`);
      if (spec.clientPassword?.name === undefined || spec.clientPassword.namespace === undefined) {
        error(
          "missing-client-password",
          "clientPassword",
          `a ${kind} needs clientPassword with both name and namespace of the Secret holding its credential`,
        );
      }
      break;
    }
    default:
      error(
        "unknown-identity-type",
        "type",
        `type ${JSON.stringify(spec.type)} is not one of 0 (user-assigned identity), 1 (service principal), 2 (service principal certificate)`,
      );
  }
  return problems;
}

/**
 * An AzureIdentity in canonical form (camelCase keys, trimmed strings, numeric `type`, `apiVersion`/`kind`
 * set, metadata copied through) with everything found on the way. Never throws.
 */
export function normalizeAzureIdentity(input: unknown): Normalized<AzureIdentity> {
  const problems: NormalizationProblem[] = [];
  const identity = readAzureIdentity(input, problems);
  problems.push(...validateAzureIdentity(identity));
  return normalized(identity, problems);
}
