import { spellingsOf, type KeySpellings } from "./legacy-keys";
import type { NormalizationProblem } from "./normalization-problem";

type JsonObject = Record<string, unknown>;

export function isPlainObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return "a list";
  if (value === null) return "null";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

/** Compares two raw values the way normalisation will see them (strings trimmed). */
function sameValue(a: unknown, b: unknown): boolean {
  const norm = (v: unknown): string => JSON.stringify(typeof v === "string" ? v.trim() : v) ?? "undefined";
  return norm(a) === norm(b);
}

/**
 * Reads loosely-typed JSON (a manifest, an object from the API server, a pre-1.6 object) into typed values,
 * recording what it had to forgive in `problems`. It never throws and never produces `error` problems: a
 * wrong-typed value is ignored with a warning, and the kind's validator then decides whether what is left is
 * usable. That split keeps `ok` a function of the normalised object alone, so normalising twice changes nothing.
 */
export class FieldReader {
  private constructor(
    private readonly source: JsonObject,
    private readonly path: string,
    private readonly spellings: KeySpellings,
    private readonly problems: NormalizationProblem[],
  ) {}

  /** A reader over `value`; a non-object (other than absent/null) is reported and read as empty. */
  static of(value: unknown, path: string, spellings: KeySpellings, problems: NormalizationProblem[]): FieldReader {
    if (value !== undefined && value !== null && !isPlainObject(value)) {
      problems.push({
        code: "invalid-field",
        severity: "warning",
        path: path === "" ? "(object)" : path,
        message: `expected an object, found ${describe(value)}; ignored`,
      });
    }
    return new FieldReader(isPlainObject(value) ? value : {}, path, spellings, problems);
  }

  private at(canonical: string): string {
    return this.path === "" ? canonical : `${this.path}.${canonical}`;
  }

  /**
   * The value under `canonical` or any key equal to it ignoring case (Go's encoding/json rule). When several
   * spellings are present the canonical one wins, then the order of the spelling table; differing values are
   * reported because v1.8 would have taken whichever came last in the stored JSON.
   */
  raw(canonical: string): unknown {
    const folded = canonical.toLowerCase();
    const present = Object.keys(this.source).filter(
      (key) => key.toLowerCase() === folded && this.source[key] !== undefined && this.source[key] !== null,
    );
    if (present.length === 0) return undefined;
    const preference = spellingsOf(this.spellings, canonical);
    const rank = (key: string): number => {
      const i = preference.indexOf(key);
      return i === -1 ? preference.length : i;
    };
    present.sort((a, b) => rank(a) - rank(b));
    const chosen = present[0] as string;
    const value = this.source[chosen];
    const conflicting = present.filter((key) => !sameValue(this.source[key], value));
    if (conflicting.length > 0) {
      this.problems.push({
        code: "conflicting-keys",
        severity: "warning",
        path: this.at(canonical),
        message: `both ${chosen} and ${conflicting.join(", ")} are set with different values; ${chosen} is used — keep only ${canonical}`,
      });
    }
    if (chosen !== canonical) {
      this.problems.push({
        code: "legacy-key",
        severity: "info",
        path: this.at(canonical),
        message: `read from the legacy key ${chosen}; it works, but rename it to ${canonical} so kubectl columns and v1.8 tooling see it`,
      });
    }
    return value;
  }

  private ignored(canonical: string, expected: string, value: unknown): undefined {
    this.problems.push({
      code: "invalid-field",
      severity: "warning",
      path: this.at(canonical),
      message: `expected ${expected}, found ${describe(value)}; ignored`,
    });
    return undefined;
  }

  private coerced(canonical: string, from: unknown, to: unknown): void {
    this.problems.push({
      code: "coerced-value",
      severity: "warning",
      path: this.at(canonical),
      message: `${JSON.stringify(from)} read as ${JSON.stringify(to)}; write it as ${typeof to === "string" ? "a quoted string" : "a number"}`,
    });
  }

  /** A trimmed, non-empty string. Numbers and booleans are stringified with a warning (YAML `selector: 123`). */
  string(canonical: string): string | undefined {
    const value = this.raw(canonical);
    if (value === undefined) return undefined;
    if (typeof value === "number" || typeof value === "boolean") {
      const text = String(value);
      this.coerced(canonical, value, text);
      return text;
    }
    if (typeof value !== "string") return this.ignored(canonical, "a string", value);
    const trimmed = value.trim();
    return trimmed === "" ? undefined : trimmed;
  }

  /** An integer; a numeric string is accepted with a warning. */
  integer(canonical: string): number | undefined {
    const value = this.raw(canonical);
    if (value === undefined) return undefined;
    if (typeof value === "number" && Number.isInteger(value)) return value;
    if (typeof value === "string" && /^[+-]?\d+$/.test(value.trim())) {
      const n = Number(value.trim());
      this.coerced(canonical, value, n);
      return n;
    }
    return this.ignored(canonical, "an integer", value);
  }

  /**
   * An integer-or-string enum such as AzureIdentity `type`: a number or a numeric string (`"1"`, both declared
   * valid by the CRD) becomes a number; anything else is kept as text so the validator names it rather than
   * normalisation quietly turning it into a default.
   */
  intOrString(canonical: string): number | string | undefined {
    const value = this.raw(canonical);
    if (value === undefined) return undefined;
    if (typeof value === "number") return value;
    if (typeof value === "string") {
      const trimmed = value.trim();
      return /^[+-]?\d+$/.test(trimmed) ? Number(trimmed) : trimmed;
    }
    return JSON.stringify(value);
  }

  /** A list of trimmed, non-empty strings; a single string is read as a one-item list with a warning. */
  stringList(canonical: string): string[] | undefined {
    const value = this.raw(canonical);
    if (value === undefined) return undefined;
    if (typeof value === "string") {
      const items = value.trim() === "" ? [] : [value.trim()];
      this.coerced(canonical, value, items);
      return items;
    }
    if (!Array.isArray(value)) return this.ignored(canonical, "a list of strings", value);
    const items: string[] = [];
    value.forEach((item, i) => {
      if (typeof item === "string" && item.trim() !== "") items.push(item.trim());
      else this.ignored(`${canonical}[${i}]`, "a non-empty string", item);
    });
    return items;
  }

  /** A string→string map (labels); scalar values are stringified with a warning, others ignored. */
  stringMap(canonical: string): Record<string, string> | undefined {
    const value = this.raw(canonical);
    if (value === undefined) return undefined;
    if (!isPlainObject(value)) return this.ignored(canonical, "a map of strings", value);
    const map: Record<string, string> = {};
    for (const [key, item] of Object.entries(value)) {
      if (typeof item === "string") map[key] = item;
      else if (typeof item === "number" || typeof item === "boolean") {
        map[key] = String(item);
        this.coerced(`${canonical}.${key}`, item, map[key]);
      } else this.ignored(`${canonical}.${key}`, "a string", item);
    }
    return map;
  }

  /** A nested object under `canonical`, read with its own spelling table. */
  child(canonical: string, spellings: KeySpellings): FieldReader {
    return FieldReader.of(this.raw(canonical), this.at(canonical), spellings, this.problems);
  }
}
