/**
 * Label and field selectors with the grammar and the errors of apimachinery's `labels.Parse` and
 * `fields.ParseSelector`: an invalid selector is a 400 BadRequest, never "match everything".
 */
import { badRequest } from "./status-errors";

export type LabelOperator = "=" | "!=" | "in" | "notin" | "exists" | "!" | "gt" | "lt";

export interface LabelRequirement {
  key: string;
  operator: LabelOperator;
  values: string[];
}

export interface LabelSelector {
  requirements: LabelRequirement[];
  matches(labels: Record<string, string> | undefined): boolean;
}

type Token =
  | { kind: "id"; text: string }
  | { kind: "op"; text: "," | "(" | ")" | "=" | "==" | "!=" | "!" | "<" | ">" }
  | { kind: "end"; text: "" };

const SPECIAL = new Set([",", "(", ")", "=", "!", "<", ">"]);

function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < input.length) {
    const c = input[i] as string;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === "=" && input[i + 1] === "=") {
      tokens.push({ kind: "op", text: "==" });
      i += 2;
    } else if (c === "!" && input[i + 1] === "=") {
      tokens.push({ kind: "op", text: "!=" });
      i += 2;
    } else if (SPECIAL.has(c)) {
      tokens.push({ kind: "op", text: c as "," | "(" | ")" | "=" | "!" | "<" | ">" });
      i++;
    } else {
      let j = i;
      while (j < input.length && !SPECIAL.has(input[j] as string) && !/\s/.test(input[j] as string)) j++;
      tokens.push({ kind: "id", text: input.slice(i, j) });
      i = j;
    }
  }
  tokens.push({ kind: "end", text: "" });
  return tokens;
}

const NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Why a label key is invalid (apimachinery's IsQualifiedName), or undefined when it is valid. */
export function labelKeyError(key: string): string | undefined {
  const slash = key.split("/");
  if (slash.length > 2) return `a qualified name must consist of alphanumeric characters, '-', '_' or '.', with an optional DNS subdomain prefix and '/'`;
  const name = slash.length === 2 ? (slash[1] as string) : key;
  const prefix = slash.length === 2 ? (slash[0] as string) : undefined;
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) {
    return "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
  }
  if (name.length === 0) return "name part must be non-empty";
  if (name.length > 63) return "name part must be no more than 63 characters";
  if (!NAME_PART.test(name)) {
    return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
  }
  return undefined;
}

/** Why a label value is invalid (apimachinery's IsValidLabelValue), or undefined when it is valid. */
export function labelValueError(value: string): string | undefined {
  if (value.length > 63) return "must be no more than 63 characters";
  if (value !== "" && !NAME_PART.test(value)) {
    return "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
  }
  return undefined;
}

class Parser {
  #tokens: Token[];
  #pos = 0;

  constructor(input: string) {
    this.#tokens = tokenize(input);
  }

  #peek(): Token {
    return this.#tokens[this.#pos] as Token;
  }

  #next(): Token {
    const t = this.#peek();
    if (t.kind !== "end") this.#pos++;
    return t;
  }

  #fail(found: Token, expected: string): never {
    throw badRequest(`unable to parse requirement: found '${found.text}', expected: ${expected}`);
  }

  parse(): LabelRequirement[] {
    const out: LabelRequirement[] = [];
    if (this.#peek().kind === "end") return out;
    for (;;) {
      out.push(this.#requirement());
      const t = this.#next();
      if (t.kind === "end") return out;
      if (t.text !== ",") this.#fail(t, "',' or 'end of string'");
    }
  }

  #key(): string {
    const t = this.#next();
    if (t.kind !== "id") this.#fail(t, "identifier");
    const problem = labelKeyError(t.text);
    if (problem) throw badRequest(`unable to parse requirement: key: Invalid value: ${JSON.stringify(t.text)}: ${problem}`);
    return t.text;
  }

  #value(allowEmpty: boolean): string {
    const t = this.#peek();
    if (t.kind !== "id") {
      if (allowEmpty && (t.kind === "end" || t.text === "," || t.text === ")")) return "";
      this.#fail(t, "identifier");
    }
    this.#next();
    const problem = labelValueError(t.text);
    if (problem) {
      throw badRequest(`unable to parse requirement: values[0][${t.text}]: Invalid value: ${JSON.stringify(t.text)}: ${problem}`);
    }
    return t.text;
  }

  #requirement(): LabelRequirement {
    if (this.#peek().text === "!") {
      this.#next();
      return { key: this.#key(), operator: "!", values: [] };
    }
    const key = this.#key();
    const op = this.#peek();
    if (op.kind === "end" || op.text === ",") return { key, operator: "exists", values: [] };
    if (op.kind === "id" && (op.text === "in" || op.text === "notin")) {
      this.#next();
      const open = this.#next();
      if (open.text !== "(") this.#fail(open, "'('");
      const values: string[] = [];
      for (;;) {
        values.push(this.#value(true));
        const t = this.#next();
        if (t.text === ")") break;
        if (t.text !== ",") this.#fail(t, "',' or ')'");
      }
      return { key, operator: op.text, values };
    }
    if (op.kind === "op" && (op.text === "=" || op.text === "==" || op.text === "!=")) {
      this.#next();
      return { key, operator: op.text === "!=" ? "!=" : "=", values: [this.#value(true)] };
    }
    if (op.kind === "op" && (op.text === "<" || op.text === ">")) {
      this.#next();
      const t = this.#next();
      if (t.kind !== "id" || !/^-?\d+$/.test(t.text)) {
        throw badRequest(`unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer`);
      }
      return { key, operator: op.text === ">" ? "gt" : "lt", values: [t.text] };
    }
    return this.#fail(op, "'=', '!=', '==', 'in', notin'");
  }
}

function matchRequirement(r: LabelRequirement, labels: Record<string, string>): boolean {
  const has = Object.hasOwn(labels, r.key);
  const value = labels[r.key];
  switch (r.operator) {
    case "=":
    case "in":
      return has && r.values.includes(value as string);
    case "!=":
    case "notin":
      return !has || !r.values.includes(value as string);
    case "exists":
      return has;
    case "!":
      return !has;
    case "gt":
    case "lt": {
      if (!has || !/^-?\d+$/.test(value as string)) return false;
      const n = Number(value);
      const bound = Number(r.values[0]);
      return r.operator === "gt" ? n > bound : n < bound;
    }
  }
}

/** Parses `labelSelector`; throws a 400 KubeStatusError on invalid syntax, keys or values. */
export function parseLabelSelector(input: string | undefined): LabelSelector {
  const requirements = input === undefined ? [] : new Parser(input).parse();
  return {
    requirements,
    matches: (labels) => requirements.every((r) => matchRequirement(r, labels ?? {})),
  };
}

export interface FieldRequirement {
  field: string;
  operator: "=" | "!=";
  value: string;
}

export interface FieldSelector {
  requirements: FieldRequirement[];
  matches(fields: (field: string) => string | undefined): boolean;
}

function splitUnescaped(input: string, sep: string): string[] {
  const parts: string[] = [];
  let current = "";
  for (let i = 0; i < input.length; i++) {
    const c = input[i] as string;
    if (c === "\\" && i + 1 < input.length) {
      current += c + input[i + 1];
      i++;
    } else if (c === sep) {
      parts.push(current);
      current = "";
    } else {
      current += c;
    }
  }
  parts.push(current);
  return parts;
}

function unescapeFieldValue(raw: string): string {
  let out = "";
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i] as string;
    if (c === "\\") {
      const n = raw[i + 1];
      if (n === "\\" || n === "," || n === "=") {
        out += n;
        i++;
        continue;
      }
      throw badRequest(`invalid field selector: invalid escape sequence in ${JSON.stringify(raw)}`);
    }
    if (c === "," || c === "=") throw badRequest(`invalid field selector: unescaped ${JSON.stringify(c)} in ${JSON.stringify(raw)}`);
    out += c;
  }
  return out;
}

/**
 * Parses `fieldSelector` (`a=b`, `a==b`, `a!=b`, comma-separated, backslash escapes) and checks every field
 * against `supported`, as the real server does ("field label not supported").
 */
export function parseFieldSelector(input: string | undefined, supported: ReadonlySet<string>): FieldSelector {
  const requirements: FieldRequirement[] = [];
  if (input !== undefined && input.trim() !== "") {
    for (const term of splitUnescaped(input, ",")) {
      let parsed: FieldRequirement | undefined;
      for (const op of ["!=", "==", "="] as const) {
        const at = term.indexOf(op);
        if (at < 0) continue;
        const field = term.slice(0, at).trim();
        if (!field) break;
        parsed = { field, operator: op === "!=" ? "!=" : "=", value: unescapeFieldValue(term.slice(at + op.length)) };
        break;
      }
      if (!parsed) throw badRequest(`invalid selector: '${input}'; can't understand '${term}'`);
      if (!supported.has(parsed.field)) throw badRequest(`field label not supported: ${parsed.field}`);
      requirements.push(parsed);
    }
  }
  return {
    requirements,
    matches: (fields) =>
      requirements.every((r) => {
        const actual = fields(r.field) ?? "";
        return r.operator === "=" ? actual === r.value : actual !== r.value;
      }),
  };
}
