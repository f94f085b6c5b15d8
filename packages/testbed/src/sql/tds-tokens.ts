// Server → client tokens of a TABULAR_RESULT message (MS-TDS 2.2.7), byte for byte as tedious parses them
// (lib/token/*-parser.js): little-endian integers, B_VARCHAR = 1-byte character count + UCS-2,
// US_VARCHAR = 2-byte character count + UCS-2.

export const TOKEN = {
  COLMETADATA: 0x81,
  ERROR: 0xaa,
  INFO: 0xab,
  LOGINACK: 0xad,
  FEATUREEXTACK: 0xae,
  ROW: 0xd1,
  ENVCHANGE: 0xe3,
  FEDAUTHINFO: 0xee,
  RETURNSTATUS: 0x79,
  DONE: 0xfd,
  DONEPROC: 0xfe,
  DONEINPROC: 0xff,
} as const;

export const DONE_STATUS = { FINAL: 0x00, MORE: 0x01, ERROR: 0x02, COUNT: 0x10, ATTN: 0x20 } as const;
/** DONE CurCmd of a SELECT statement. */
export const CURCMD_SELECT = 0xc1;
/** DONEPROC CurCmd of an EXECUTE (sp_executesql). */
export const CURCMD_EXECUTE = 0xe0;
/** TDS 7.4, the version tedious asks for by default; written big-endian in LOGINACK. */
export const TDS_VERSION_7_4 = 0x74000004;
/** SQL_Latin1_General_CP1_CI_AS: LCID 0x0409, flags, version, sort ID 52. */
export const DEFAULT_COLLATION = Buffer.from([0x09, 0x04, 0xd0, 0x00, 0x34]);

const ucs2 = (s: string) => Buffer.from(s, "utf16le");

function bVarChar(s: string): Buffer {
  const clipped = s.slice(0, 255);
  return Buffer.concat([Buffer.from([clipped.length]), ucs2(clipped)]);
}

function usVarChar(s: string): Buffer {
  const clipped = s.slice(0, 65_535);
  const length = Buffer.alloc(2);
  length.writeUInt16LE(clipped.length);
  return Buffer.concat([length, ucs2(clipped)]);
}

/** Token type + USHORT length + body. */
function withUShortLength(type: number, body: Buffer): Buffer {
  const header = Buffer.alloc(3);
  header.writeUInt8(type, 0);
  header.writeUInt16LE(body.length, 1);
  return Buffer.concat([header, body]);
}

export function loginAck(progName: string, version: [number, number, number, number]): Buffer {
  const tds = Buffer.alloc(5);
  tds.writeUInt8(0x01, 0); // interface SQL_TSQL
  tds.writeUInt32BE(TDS_VERSION_7_4, 1);
  return withUShortLength(TOKEN.LOGINACK, Buffer.concat([tds, bVarChar(progName), Buffer.from(version)]));
}

export type EnvChange =
  | { type: "database"; newValue: string; oldValue: string }
  | { type: "packetSize"; newValue: number; oldValue: number }
  | { type: "collation"; newValue: Buffer };

export function envChange(change: EnvChange): Buffer {
  switch (change.type) {
    case "database":
      return withUShortLength(TOKEN.ENVCHANGE, Buffer.concat([Buffer.from([0x01]), bVarChar(change.newValue), bVarChar(change.oldValue)]));
    case "packetSize":
      return withUShortLength(TOKEN.ENVCHANGE, Buffer.concat([Buffer.from([0x04]), bVarChar(String(change.newValue)), bVarChar(String(change.oldValue))]));
    case "collation":
      return withUShortLength(TOKEN.ENVCHANGE, Buffer.concat([Buffer.from([0x07, change.newValue.length]), change.newValue, Buffer.from([0x00])]));
  }
}

export interface ServerMessage {
  number: number;
  state: number;
  /** Severity: ≤ 10 informational (INFO token), ≥ 11 an error (ERROR token). */
  severity: number;
  message: string;
  serverName: string;
  procName?: string;
  lineNumber?: number;
}

export function errorOrInfo(msg: ServerMessage): Buffer {
  const fixed = Buffer.alloc(6);
  fixed.writeUInt32LE(msg.number, 0);
  fixed.writeUInt8(msg.state, 4);
  fixed.writeUInt8(msg.severity, 5);
  const line = Buffer.alloc(4);
  line.writeUInt32LE(msg.lineNumber ?? 1);
  const body = Buffer.concat([fixed, usVarChar(msg.message), bVarChar(msg.serverName), bVarChar(msg.procName ?? ""), line]);
  return withUShortLength(msg.severity > 10 ? TOKEN.ERROR : TOKEN.INFO, body);
}

/** FEATUREEXTACK acknowledging FEDAUTH (no data for the ADAL library) and UTF-8 support. */
export function featureExtAck(features: Array<{ id: number; data: Buffer }>): Buffer {
  const parts: Buffer[] = [Buffer.from([TOKEN.FEATUREEXTACK])];
  for (const f of features) {
    const header = Buffer.alloc(5);
    header.writeUInt8(f.id, 0);
    header.writeUInt32LE(f.data.length, 1);
    parts.push(header, f.data);
  }
  parts.push(Buffer.from([0xff]));
  return Buffer.concat(parts);
}

/**
 * FEDAUTHINFO: where the client gets its token (STSURL, id 0x01) and for which resource (SPN, id 0x02).
 * Option offsets count from the start of CountOfInfoIDs, as tedious' fedauth-info-parser reads them.
 */
export function fedAuthInfo(stsUrl: string, spn: string): Buffer {
  const options: Array<[number, Buffer]> = [
    [0x01, ucs2(stsUrl)],
    [0x02, ucs2(spn)],
  ];
  const table = Buffer.alloc(4 + options.length * 9);
  table.writeUInt32LE(options.length, 0);
  let dataOffset = table.length;
  options.forEach(([id, data], i) => {
    const at = 4 + i * 9;
    table.writeUInt8(id, at);
    table.writeUInt32LE(data.length, at + 1);
    table.writeUInt32LE(dataOffset, at + 5);
    dataOffset += data.length;
  });
  const body = Buffer.concat([table, ...options.map(([, data]) => data)]);
  const header = Buffer.alloc(5);
  header.writeUInt8(TOKEN.FEDAUTHINFO, 0);
  header.writeUInt32LE(body.length, 1);
  return Buffer.concat([header, body]);
}

/** DONE, or DONEINPROC/DONEPROC inside a procedure call (same layout). */
export function done(status: number, curCmd = 0, rowCount = 0, type: number = TOKEN.DONE): Buffer {
  const token = Buffer.alloc(13);
  token.writeUInt8(type, 0);
  token.writeUInt16LE(status, 1);
  token.writeUInt16LE(curCmd, 3);
  token.writeBigUInt64LE(BigInt(rowCount), 5);
  return token;
}

export function returnStatus(value: number): Buffer {
  const token = Buffer.alloc(5);
  token.writeUInt8(TOKEN.RETURNSTATUS, 0);
  token.writeInt32LE(value, 1);
  return token;
}

/** A result value: integers travel as INTN (4 or 8 bytes), strings as NVARCHAR, null as an INTN NULL. */
export type SqlValue = number | bigint | string | null;

export interface ResultColumn {
  name: string;
  value: SqlValue;
}

const TYPE_INTN = 0x26;
const TYPE_NVARCHAR = 0xe7;
const FLAG_NULLABLE = 0x0001;
/** NVARCHAR(4000) is the longest non-MAX column; longer strings are cut (documented). */
export const MAX_NVARCHAR_CHARS = 4000;

function intWidth(value: number | bigint): 4 | 8 {
  const v = BigInt(value);
  return v >= -(2n ** 31n) && v < 2n ** 31n ? 4 : 8;
}

/** COLMETADATA + one ROW for a single-row result set. */
export function singleRowResult(columns: readonly ResultColumn[]): Buffer {
  const meta: Buffer[] = [];
  const row: Buffer[] = [Buffer.from([TOKEN.ROW])];
  const count = Buffer.alloc(3);
  count.writeUInt8(TOKEN.COLMETADATA, 0);
  count.writeUInt16LE(columns.length, 1);
  meta.push(count);
  for (const column of columns) {
    const head = Buffer.alloc(6);
    head.writeUInt32LE(0, 0); // UserType
    head.writeUInt16LE(FLAG_NULLABLE, 4);
    const value = column.value;
    if (typeof value === "string") {
      const text = value.slice(0, MAX_NVARCHAR_CHARS);
      const maxBytes = Buffer.alloc(2);
      maxBytes.writeUInt16LE(Math.max(text.length, 1) * 2);
      meta.push(head, Buffer.from([TYPE_NVARCHAR]), maxBytes, DEFAULT_COLLATION, bVarChar(column.name));
      const length = Buffer.alloc(2);
      length.writeUInt16LE(text.length * 2);
      row.push(length, ucs2(text));
    } else {
      const width = value === null ? 4 : intWidth(value);
      meta.push(head, Buffer.from([TYPE_INTN, width]), bVarChar(column.name));
      if (value === null) {
        row.push(Buffer.from([0]));
      } else {
        const data = Buffer.alloc(1 + width);
        data.writeUInt8(width, 0);
        if (width === 4) data.writeInt32LE(Number(value), 1);
        else data.writeBigInt64LE(BigInt(value), 1);
        row.push(data);
      }
    }
  }
  return Buffer.concat([...meta, ...row]);
}
