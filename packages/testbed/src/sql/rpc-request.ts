// RPC requests (MS-TDS 2.2.6.6): tedious' execSql sends sp_executesql (ProcID 10) with the statement as its
// first NVARCHAR parameter and the parameter declarations as its second. The responder runs the statement
// when there are no declared parameters; every length is checked against the message.
import { TdsProtocolError } from "./tds-packets";

export const SP_EXECUTESQL = 10;
const TYPE_NVARCHAR = 0xe7;
const TYPE_NCHAR = 0xef;
const PLP_MAX = 0xffff;
const MAX_STATEMENT_BYTES = 1024 * 1024;

export interface RpcCall {
  /** ProcID for the well-known procedures, else undefined. */
  procId: number | undefined;
  procName: string | undefined;
  /** sp_executesql's @statement, when the first parameter is a string. */
  statement: string | undefined;
  /** sp_executesql's @params (parameter declarations; empty when the query has none). */
  declarations: string | undefined;
}

class Cursor {
  offset: number;
  constructor(
    readonly buf: Buffer,
    offset: number,
  ) {
    this.offset = offset;
  }
  need(bytes: number): void {
    if (this.offset + bytes > this.buf.length) throw new TdsProtocolError("RPC request is truncated");
  }
  u8(): number {
    this.need(1);
    return this.buf.readUInt8(this.offset++);
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16LE(this.offset);
    this.offset += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.offset);
    this.offset += 4;
    return v;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const v = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }
}

export function parseRpcRequest(payload: Buffer): RpcCall {
  if (payload.length < 4) throw new TdsProtocolError("RPC request is shorter than its ALL_HEADERS length");
  const headersBytes = payload.readUInt32LE(0);
  if (headersBytes < 4 || headersBytes > payload.length) throw new TdsProtocolError("RPC ALL_HEADERS length is out of bounds");
  const c = new Cursor(payload, headersBytes);
  const nameLength = c.u16();
  let procId: number | undefined;
  let procName: string | undefined;
  if (nameLength === 0xffff) procId = c.u16();
  else procName = c.bytes(nameLength * 2).toString("utf16le");
  c.u16(); // option flags
  const statement = c.offset < payload.length ? stringParameter(c) : undefined;
  const declarations = c.offset < payload.length ? stringParameter(c) : undefined;
  return { procId, procName, statement, declarations };
}

/** One parameter: name, status, TYPE_INFO; its value when it is an NVARCHAR/NCHAR, else undefined. */
function stringParameter(c: Cursor): string | undefined {
  c.bytes(c.u8() * 2); // name
  c.u8(); // status flags
  const type = c.u8();
  if (type !== TYPE_NVARCHAR && type !== TYPE_NCHAR) return undefined;
  const maxLength = c.u16();
  c.bytes(5); // collation
  if (maxLength !== PLP_MAX) {
    const length = c.u16();
    return length === 0xffff ? undefined : c.bytes(length).toString("utf16le");
  }
  // PLP: 8-byte total (or "unknown"), then chunks of UInt32 length + data, ended by a zero length.
  c.bytes(8);
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const length = c.u32();
    if (length === 0) break;
    total += length;
    if (total > MAX_STATEMENT_BYTES) throw new TdsProtocolError("RPC string parameter is too long");
    chunks.push(c.bytes(length));
  }
  return Buffer.concat(chunks).toString("utf16le");
}
