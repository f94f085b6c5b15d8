// The SQL the responder understands: a fixed, documented subset, enough for connection checks and
// "who am I" queries — not a SQL engine.
//
//   SET …                                  accepted and ignored (tedious' initial batch of session options)
//   SELECT item [, item]… [;]              one single-row result set per SELECT
//   item := expr [[AS] alias]
//   expr := integer | 'string' | N'string' | NULL
//         | SUSER_SNAME() | SUSER_NAME() | ORIGINAL_LOGIN() | SYSTEM_USER     → the login: <appid>@<tid>
//         | USER_NAME() | CURRENT_USER | SESSION_USER                         → the database user's name
//         | DB_NAME() | @@VERSION | @@SERVERNAME | @@SPID
//
// The same text arrives as a SQL batch (tedious execSqlBatch) or as sp_executesql's @statement (execSql,
// see rpc-request.ts). Anything else answers error 50000 naming what was not understood.
import { TdsProtocolError } from "./tds-packets";
import type { ResultColumn, SqlValue } from "./tds-tokens";

export interface SessionFacts {
  /** SUSER_SNAME(): `<appid>@<tid>` of the token's principal. */
  loginName: string;
  /** USER_NAME(): the database user the principal was mapped to. */
  userName: string;
  database: string;
  version: string;
  serverName: string;
  spid: number;
}

export type StatementResult = { kind: "rows"; columns: ResultColumn[] } | { kind: "ok" } | { kind: "error"; message: string };

/** Maximum statements one batch may hold; more is refused as a whole. */
const MAX_STATEMENTS = 100;
const UNSUPPORTED =
  "The testbed TDS responder is not a SQL engine: it answers SET statements and SELECTs of literals (integers, strings, NULL) and of " +
  "SUSER_SNAME(), USER_NAME(), CURRENT_USER, DB_NAME(), @@VERSION, @@SERVERNAME, @@SPID.";

/** The batch text after the ALL_HEADERS block (MS-TDS 2.2.6.6; present from TDS 7.2 on). */
export function sqlBatchText(payload: Buffer): string {
  if (payload.length < 4) throw new TdsProtocolError("SQL batch is shorter than its ALL_HEADERS length");
  const headersBytes = payload.readUInt32LE(0);
  if (headersBytes < 4 || headersBytes > payload.length) throw new TdsProtocolError("SQL batch ALL_HEADERS length is out of bounds");
  return payload.toString("utf16le", headersBytes);
}

type Tok = { kind: "word" | "number" | "string" | "quoted" | "punct"; text: string };

function tokenize(sql: string): Tok[] {
  const tokens: Tok[] = [];
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === "-" && sql[i + 1] === "-") {
      while (i < sql.length && sql[i] !== "\n") i++;
    } else if (c === "'" || ((c === "N" || c === "n") && sql[i + 1] === "'")) {
      i += c === "'" ? 1 : 2;
      let text = "";
      for (;;) {
        if (i >= sql.length) throw new SyntaxError("Unclosed quotation mark after the character string.");
        if (sql[i] === "'" && sql[i + 1] === "'") {
          text += "'";
          i += 2;
        } else if (sql[i] === "'") {
          i++;
          break;
        } else {
          text += sql[i++];
        }
      }
      tokens.push({ kind: "string", text });
    } else if (c === "[" || c === '"') {
      const close = c === "[" ? "]" : '"';
      const end = sql.indexOf(close, i + 1);
      if (end < 0) throw new SyntaxError(`Unclosed quoted identifier starting at ${sql.slice(i, i + 20)}`);
      tokens.push({ kind: "quoted", text: sql.slice(i + 1, end) });
      i = end + 1;
    } else if (/[0-9]/.test(c)) {
      const m = /^[0-9]+/.exec(sql.slice(i))!;
      tokens.push({ kind: "number", text: m[0] });
      i += m[0].length;
    } else if (/[A-Za-z_@#]/.test(c)) {
      const m = /^[A-Za-z_@#][A-Za-z0-9_@#$]*/.exec(sql.slice(i))!;
      tokens.push({ kind: "word", text: m[0] });
      i += m[0].length;
    } else {
      tokens.push({ kind: "punct", text: c });
      i++;
    }
  }
  return tokens;
}

const isWord = (t: Tok | undefined, word: string) => t?.kind === "word" && t.text.toUpperCase() === word;

/** Splits at `;` and before each SET/SELECT that starts a new statement. */
function statements(tokens: Tok[]): Tok[][] {
  const result: Tok[][] = [];
  let current: Tok[] = [];
  for (const t of tokens) {
    if (t.kind === "punct" && t.text === ";") {
      if (current.length > 0) result.push(current);
      current = [];
      continue;
    }
    if (current.length > 0 && (isWord(t, "SET") || isWord(t, "SELECT"))) {
      result.push(current);
      current = [];
    }
    current.push(t);
  }
  if (current.length > 0) result.push(current);
  return result;
}

export function runBatch(sql: string, facts: SessionFacts): StatementResult[] {
  let parsed: Tok[][];
  try {
    parsed = statements(tokenize(sql));
  } catch (error) {
    return [{ kind: "error", message: (error as Error).message }];
  }
  if (parsed.length > MAX_STATEMENTS) return [{ kind: "error", message: `A batch may hold at most ${MAX_STATEMENTS} statements here.` }];
  if (parsed.length === 0) return [{ kind: "ok" }];
  return parsed.map((statement) => {
    try {
      return runStatement(statement, facts);
    } catch (error) {
      // Literal out of range and the like: SQL Server answers those as statement errors, so do we.
      return { kind: "error", message: (error as Error).message };
    }
  });
}

function runStatement(tokens: Tok[], facts: SessionFacts): StatementResult {
  if (isWord(tokens[0], "SET")) return { kind: "ok" };
  if (!isWord(tokens[0], "SELECT")) return { kind: "error", message: `${UNSUPPORTED} Not understood: '${tokens[0]!.text}'.` };
  const columns: ResultColumn[] = [];
  let i = 1;
  for (;;) {
    const expr = expression(tokens, i, facts);
    if (!expr) return { kind: "error", message: `${UNSUPPORTED} Not understood: '${tokens[i]?.text ?? "end of statement"}'.` };
    i = expr.next;
    let name = "";
    if (isWord(tokens[i], "AS")) i++;
    const alias = tokens[i];
    if (alias && (alias.kind === "quoted" || alias.kind === "string" || (alias.kind === "word" && !isWord(alias, "FROM")))) {
      name = alias.text;
      i++;
    }
    columns.push({ name, value: expr.value });
    if (i >= tokens.length) return { kind: "rows", columns };
    if (tokens[i]!.kind === "punct" && tokens[i]!.text === ",") {
      i++;
      continue;
    }
    return { kind: "error", message: `${UNSUPPORTED} Not understood: '${tokens[i]!.text}'.` };
  }
}

function expression(tokens: Tok[], i: number, facts: SessionFacts): { value: SqlValue; next: number } | undefined {
  const t = tokens[i];
  if (!t) return undefined;
  if (t.kind === "punct" && t.text === "-" && tokens[i + 1]?.kind === "number") return { value: integer(`-${tokens[i + 1]!.text}`), next: i + 2 };
  if (t.kind === "number") return { value: integer(t.text), next: i + 1 };
  if (t.kind === "string") return { value: t.text, next: i + 1 };
  if (t.kind !== "word") return undefined;
  const word = t.text.toUpperCase();
  const niladic: Record<string, SqlValue> = {
    NULL: null,
    CURRENT_USER: facts.userName,
    SESSION_USER: facts.userName,
    SYSTEM_USER: facts.loginName,
    "@@VERSION": facts.version,
    "@@SERVERNAME": facts.serverName,
    "@@SPID": facts.spid,
  };
  if (word in niladic) return { value: niladic[word]!, next: i + 1 };
  const functions: Record<string, SqlValue> = {
    SUSER_SNAME: facts.loginName,
    SUSER_NAME: facts.loginName,
    ORIGINAL_LOGIN: facts.loginName,
    USER_NAME: facts.userName,
    DB_NAME: facts.database,
  };
  if (word in functions && tokens[i + 1]?.text === "(" && tokens[i + 2]?.text === ")") return { value: functions[word]!, next: i + 3 };
  return undefined;
}

function integer(text: string): number | bigint {
  const big = BigInt(text);
  if (big > 2n ** 63n - 1n || big < -(2n ** 63n)) throw new SyntaxError(`The number '${text}' is out of the range for numeric representation.`);
  return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
}
