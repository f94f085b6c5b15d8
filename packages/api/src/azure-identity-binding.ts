import { FieldReader, isPlainObject } from "./field-reader";
import { AZURE_IDENTITY_BINDING_SPEC_SPELLINGS, REPLICA_STATUS_SPELLINGS, STATUS_ROOT_SPELLINGS } from "./legacy-keys";
import { API_GROUP_VERSION } from "./names";
import { normalized, type Normalized, type NormalizationProblem } from "./normalization-problem";
import type { KubeList, ObjectMeta } from "./object-meta";
import { AZURE_IDENTITY_BINDING_NAMES } from "./resource-kinds";

export interface AzureIdentityBindingSpec {
  /** Name of an AzureIdentity in the binding's own namespace. */
  azureIdentity?: string;
  /** Pods whose `aadpodidbinding` label equals this value exactly are bound. */
  selector?: string;
  /** Declared by v1.8 and never used; kept so objects round-trip. */
  weight?: number;
}

export interface AzureIdentityBindingStatus {
  availableReplicas?: number;
}

export interface AzureIdentityBinding {
  apiVersion: typeof API_GROUP_VERSION;
  kind: typeof AZURE_IDENTITY_BINDING_NAMES.kind;
  metadata: ObjectMeta;
  spec: AzureIdentityBindingSpec;
  status?: AzureIdentityBindingStatus;
}

export type AzureIdentityBindingList = KubeList<AzureIdentityBinding>;

/** Reads a binding written with any spelling of legacy-keys.ts (`AzureIdentity:`, `Selector:` …). */
export function readAzureIdentityBinding(
  input: unknown,
  problems: NormalizationProblem[],
  path = "",
): AzureIdentityBinding {
  const root = FieldReader.of(input, path, STATUS_ROOT_SPELLINGS, problems);
  const spec = root.child("spec", AZURE_IDENTITY_BINDING_SPEC_SPELLINGS);
  const out: AzureIdentityBindingSpec = {};
  const azureIdentity = spec.string("azureIdentity");
  if (azureIdentity !== undefined) out.azureIdentity = azureIdentity;
  const selector = spec.string("selector");
  if (selector !== undefined) out.selector = selector;
  const weight = spec.integer("weight");
  if (weight !== undefined) out.weight = weight;

  const metadata = isPlainObject(input) && isPlainObject(input.metadata) ? { ...(input.metadata as ObjectMeta) } : {};
  const binding: AzureIdentityBinding = {
    apiVersion: API_GROUP_VERSION,
    kind: AZURE_IDENTITY_BINDING_NAMES.kind,
    metadata,
    spec: out,
  };
  const availableReplicas = root.child("status", REPLICA_STATUS_SPELLINGS).integer("availableReplicas");
  if (availableReplicas !== undefined) binding.status = { availableReplicas };
  return binding;
}

/**
 * A binding is unusable without the identity it names or without a selector. v1.8 let an empty selector match
 * pods labelled `aadpodidbinding: ""`; we treat it as a mistake, so it binds nothing and says why.
 */
export function validateAzureIdentityBinding(binding: AzureIdentityBinding, path = ""): NormalizationProblem[] {
  const at = (field: string): string => (path === "" ? `spec.${field}` : `${path}.spec.${field}`);
  const problems: NormalizationProblem[] = [];
  if (binding.spec.azureIdentity === undefined) {
    problems.push({
      code: "missing-azure-identity",
      severity: "error",
      path: at("azureIdentity"),
      message: "azureIdentity must name an AzureIdentity in the binding's namespace",
    });
  }
  if (binding.spec.selector === undefined) {
    problems.push({
      code: "missing-selector",
      severity: "error",
      path: at("selector"),
      message: "selector must be set; pods opt in with the label aadpodidbinding: <selector>",
    });
  }
  return problems;
}

/** A binding in canonical form with everything found on the way. Never throws. */
export function normalizeAzureIdentityBinding(input: unknown): Normalized<AzureIdentityBinding> {
  const problems: NormalizationProblem[] = [];
  const binding = readAzureIdentityBinding(input, problems);
  problems.push(...validateAzureIdentityBinding(binding));
  return normalized(binding, problems);
}
