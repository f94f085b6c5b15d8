/**
 * Kubernetes's resource.Quantity in canonical form, as the API server stores and returns every quantity (it decodes
 * into the typed struct and re-serialises): `1024Mi` → `1Gi`, `1.5` → `1500m`, `0.1` → `100m`, `1000` → `1k`.
 * The rules (k8s.io/apimachinery/pkg/api/resource, type Quantity):
 *   - the format of the input is kept: binary SI (Ki…Ei), decimal SI (n u m "" k M G T P E) or decimal exponent
 *     (e3, E-6); a binary quantity below 1024 in magnitude, or not a whole number, becomes decimal SI;
 *   - no precision is lost, no fractional digits are written, and the suffix is as large as possible;
 *   - precision below 1n is rounded up (away from zero) to a whole number of nano-units;
 *   - no sign unless negative.
 */

const DECIMAL_SUFFIX: Record<string, number> = { n: -9, u: -6, m: -3, "": 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const BINARY_SUFFIX: Record<string, number> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5, Ei: 6 };
const DECIMAL_BY_EXPONENT = new Map(Object.entries(DECIMAL_SUFFIX).map(([s, e]) => [e, s]));
const BINARY_BY_POWER = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
/** kube-apiserver's regular expression for quantities (apimachinery's splitREString, anchored). */
const QUANTITY = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(([KMGTPE]i)|[numkMGTPE]?|[eE][+-]?\d+)$/;

export class QuantityError extends Error {
  constructor(readonly text: string) {
    super(`quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'; got "${text}"`);
    this.name = "QuantityError";
  }
}

const pow = (base: bigint, n: number): bigint => base ** BigInt(n);
const abs = (n: bigint): bigint => (n < 0n ? -n : n);

/** `text` in canonical form; throws QuantityError when it is not a quantity. */
export function canonicalQuantity(text: string): string {
  const m = QUANTITY.exec(text.trim());
  if (!m) throw new QuantityError(text);
  const number = m[1] as string;
  const suffix = m[2] as string;
  const negative = number.startsWith("-");
  const [whole = "", fraction = ""] = number.replace(/^[+-]/, "").split(".");
  // value = digits × 10^exponent10 × 1024^power2, exactly
  let digits = BigInt(`${whole}${fraction}` || "0");
  let exponent10 = -fraction.length;
  let format: "binary" | "decimal" | "exponent" = "decimal";
  if (suffix in BINARY_SUFFIX) {
    format = "binary";
    digits *= pow(1024n, BINARY_SUFFIX[suffix] as number);
  } else if (/^[eE]/.test(suffix) && suffix.length > 1) {
    format = "exponent";
    exponent10 += Number(suffix.slice(1));
  } else {
    exponent10 += DECIMAL_SUFFIX[suffix] as number;
  }
  if (digits === 0n) return "0";
  const sign = negative ? "-" : "";

  if (format === "binary") {
    // A whole number of bytes at least 1024 in magnitude stays binary; anything else is written as decimal SI.
    const integer = exponent10 >= 0 ? digits * pow(10n, exponent10) : digits % pow(10n, -exponent10) === 0n ? digits / pow(10n, -exponent10) : undefined;
    if (integer !== undefined && integer >= 1024n) {
      let value = integer;
      let power = 0;
      while (power < 6 && value % 1024n === 0n) {
        value /= 1024n;
        power++;
      }
      return `${sign}${value}${BINARY_BY_POWER[power]}`;
    }
    format = "decimal";
  }

  // Whole mantissa with an exponent that is a multiple of 3 (the suffixes' steps), at least -9 (nano).
  let mantissa = digits;
  let exponent = Math.floor(exponent10 / 3) * 3;
  mantissa *= pow(10n, exponent10 - exponent);
  if (exponent < -9) {
    const divisor = pow(10n, -9 - exponent);
    mantissa = mantissa / divisor + (mantissa % divisor === 0n ? 0n : 1n);
    exponent = -9;
  }
  const maxExponent = format === "decimal" ? 18 : Number.POSITIVE_INFINITY;
  while (mantissa % 1000n === 0n && exponent + 3 <= maxExponent) {
    mantissa /= 1000n;
    exponent += 3;
  }
  if (format === "decimal" && exponent > 18) {
    mantissa *= pow(10n, exponent - 18);
    exponent = 18;
  }
  const magnitude = abs(mantissa).toString();
  if (format === "exponent") return `${sign}${magnitude}${exponent === 0 ? "" : `e${exponent}`}`;
  return `${sign}${magnitude}${DECIMAL_BY_EXPONENT.get(exponent) ?? ""}`;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Rewrites the quantities of a pod spec in canonical form, in place — containers' (and init and ephemeral
 * containers') resource requests and limits, pod-level resources and overhead, emptyDir size limits — and returns
 * the fields that are not quantities, as `path: message`.
 */
export function canonicalizePodSpecQuantities(spec: Json, path: string): Array<{ field: string; value: unknown; message: string }> {
  const problems: Array<{ field: string; value: unknown; message: string }> = [];
  const fix = (holder: unknown, key: string, field: string): void => {
    if (!isObject(holder)) return;
    const value = holder[key];
    if (value === undefined || value === null) return;
    try {
      // JSON numbers are quantities too (`cpu: 1` in YAML); anything else is not
      if (typeof value !== "string" && typeof value !== "number") throw new QuantityError(JSON.stringify(value));
      holder[key] = canonicalQuantity(String(value));
    } catch (error) {
      problems.push({ field, value, message: (error as Error).message });
    }
  };
  const fixList = (list: unknown, field: string): void => {
    if (!isObject(list)) return;
    for (const name of Object.keys(list)) fix(list, name, `${field}[${name}]`);
  };
  for (const kind of ["containers", "initContainers", "ephemeralContainers"]) {
    const containers = spec[kind];
    if (!Array.isArray(containers)) continue;
    containers.forEach((c: unknown, i) => {
      const resources = isObject(c) ? c["resources"] : undefined;
      if (!isObject(resources)) return;
      fixList(resources["requests"], `${path}.${kind}[${i}].resources.requests`);
      fixList(resources["limits"], `${path}.${kind}[${i}].resources.limits`);
    });
  }
  const podResources = spec["resources"];
  if (isObject(podResources)) {
    fixList(podResources["requests"], `${path}.resources.requests`);
    fixList(podResources["limits"], `${path}.resources.limits`);
  }
  fixList(spec["overhead"], `${path}.overhead`);
  const volumes = spec["volumes"];
  if (Array.isArray(volumes)) volumes.forEach((v: unknown, i) => fix(isObject(v) ? v["emptyDir"] : undefined, "sizeLimit", `${path}.volumes[${i}].emptyDir.sizeLimit`));
  return problems;
}
