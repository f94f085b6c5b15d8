import {
  API_GROUP_VERSION,
  formatProblems,
  hasErrors,
  IDENTITY_TYPE,
  normalizeAzureIdentity,
  normalizeAzureIdentityBinding,
  type NormalizationProblem,
} from "@podidentity/api";
import { parse } from "yaml";
import { mapChartValues, type UnmappedValue } from "./chart-values";
import { InstallOptionsError, type IdentityWithBinding, type InstallInput } from "./install-options";

/**
 * One identity of a values file, as aad-pod-identity v1.8's chart (`azureIdentities`) wrote it: the identity's spec
 * fields (any spelling @podidentity/api reads, e.g. `ResourceID`), `name`/`namespace` (empty → the map key / the
 * install namespace, as the chart did), and `binding: { name, selector }` in the identity's namespace.
 */
export interface ValuesIdentityEntry {
  key: string;
  name: string;
  /** Undefined when the values leave it to the install namespace. */
  namespace: string | undefined;
  spec: Record<string, unknown>;
  binding: { name: string; selector: unknown; namespace: string | undefined };
}

/** What a values file contributes: identities, the chart settings that map onto our options, and what does not map. */
export interface InstallValues {
  identities: ValuesIdentityEntry[];
  options: InstallInput;
  /** Keys podidentity does not honour, with the reason: an error for `render --values` unless --allow-unmapped-values. */
  unmapped: UnmappedValue[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === "string" && v.trim() !== "" ? v.trim() : undefined);

/**
 * v1.8's chart documents `clientPassword` as a JSON string (`"{\"name\":\"sp-secret\",\"namespace\":\"default\"}"`),
 * which its template wrote into the identity verbatim; the CRD's field is an object. Accepts both.
 */
function clientPasswordObject(spec: Obj, where: string): Obj {
  const key = Object.keys(spec).find((k) => k.toLowerCase() === "clientpassword");
  const value = key === undefined ? undefined : spec[key];
  if (key === undefined || typeof value !== "string") return spec;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new InstallOptionsError(`${where}.${key} must be a SecretReference: an object { name, namespace } or the chart's JSON string form '{"name":"…","namespace":"…"}'`);
  }
  if (!isObj(parsed)) throw new InstallOptionsError(`${where}.${key} must be a JSON object { name, namespace }`);
  return { ...spec, [key]: parsed };
}

/**
 * Reads a values file (YAML or JSON) written for aad-pod-identity v1.8's chart 4.1.x or podidentity's chart
 * (charts/podidentity): every key is mapped onto InstallOptions or listed in `unmapped` with the reason
 * (see chart-values.ts); `azureIdentities` (a map keyed by identity, or the older list form with `name`) become
 * identity entries.
 */
export function parseInstallValues(text: string, source = "values"): InstallValues {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (cause) {
    throw new InstallOptionsError(`${source} is not valid YAML: ${(cause as Error).message}`, { cause });
  }
  if (doc === null || doc === undefined) return { identities: [], options: {}, unmapped: [] };
  if (!isObj(doc)) throw new InstallOptionsError(`${source} must be a YAML mapping`);
  const { options, unmapped } = mapChartValues(doc, source);

  const raw = doc["azureIdentities"];
  const entries: [string, unknown][] = Array.isArray(raw)
    ? raw.map((e, i) => [str(isObj(e) ? e["name"] : undefined) ?? `azureIdentities[${i}]`, e])
    : isObj(raw)
      ? Object.entries(raw)
      : [];
  if (raw !== undefined && raw !== null && !Array.isArray(raw) && !isObj(raw)) {
    throw new InstallOptionsError(`${source}: azureIdentities must be a map of identities`);
  }
  const identities = entries.map(([key, value]): ValuesIdentityEntry => {
    if (!isObj(value)) throw new InstallOptionsError(`${source}: azureIdentities.${key} must be a mapping`);
    const { name, namespace, binding: _binding, Binding: _legacyBinding, ...spec } = value;
    const b = value["binding"] ?? value["Binding"];
    if (!isObj(b)) throw new InstallOptionsError(`${source}: azureIdentities.${key}.binding is missing (it needs name and selector)`);
    const identityName = str(name) ?? key;
    return {
      key,
      name: identityName,
      namespace: str(namespace),
      spec: clientPasswordObject(spec, `${source}: azureIdentities.${key}`),
      binding: {
        name: str(b["name"]) ?? `${identityName}-binding`,
        selector: b["selector"] ?? b["Selector"],
        namespace: str(b["namespace"]),
      },
    };
  });
  return { identities, options, unmapped };
}

/** Problems found while turning values into objects, each naming the values entry. */
export interface ValuesProblem extends NormalizationProblem {
  entry: string;
}

/**
 * Builds the AzureIdentity + AzureIdentityBinding pairs, normalised (canonical keys) and checked with
 * @podidentity/api's rules. Entries without a namespace go to `installNamespace`, as v1.8's chart put them in the
 * release namespace. Throws when an entry has errors (an identity MIC would refuse to assign).
 */
export function identitiesFromValues(values: InstallValues, installNamespace: string): IdentityWithBinding[] {
  const result: IdentityWithBinding[] = [];
  const problems: ValuesProblem[] = [];
  for (const e of values.identities) {
    const namespace = e.namespace ?? installNamespace;
    const identity = normalizeAzureIdentity({
      apiVersion: API_GROUP_VERSION,
      kind: "AzureIdentity",
      metadata: { name: e.name, namespace },
      spec: e.spec,
    });
    const binding = normalizeAzureIdentityBinding({
      apiVersion: API_GROUP_VERSION,
      kind: "AzureIdentityBinding",
      metadata: { name: e.binding.name, namespace: e.binding.namespace ?? namespace },
      spec: { azureIdentity: e.name, selector: e.binding.selector },
    });
    for (const p of [...identity.problems, ...binding.problems]) if (p.severity === "error") problems.push({ ...p, entry: e.key });
    result.push({ identity: identity.object, binding: binding.object });
  }
  if (hasErrors(problems)) {
    const lines = problems.map((p) => `azureIdentities.${p.entry}: ${formatProblems([p])}`);
    throw new InstallOptionsError(`values: ${problems.length} identity problem(s):\n${lines.join("\n")}`);
  }
  return result;
}

/** True for service-principal identities (types 1 and 2): NMI reads their `clientPassword` Secret. */
export function isServicePrincipal(pair: IdentityWithBinding): boolean {
  const type = pair.identity.spec.type;
  return type === IDENTITY_TYPE.ServicePrincipal || type === IDENTITY_TYPE.ServicePrincipalCertificate;
}
