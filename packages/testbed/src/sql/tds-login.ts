// The client's side of the login (MS-TDS 2.2.6.5 PRELOGIN, 2.2.6.4 LOGIN7, 2.2.6.3 FEDAUTH_TOKEN):
// parsers that check every offset against the buffer, so a malformed message is an error, never a crash.
import { TdsProtocolError } from "./tds-packets";

export const PRELOGIN_OPTION = {
  VERSION: 0x00,
  ENCRYPTION: 0x01,
  INSTOPT: 0x02,
  THREADID: 0x03,
  MARS: 0x04,
  TRACEID: 0x05,
  FEDAUTHREQUIRED: 0x06,
  TERMINATOR: 0xff,
} as const;

export const ENCRYPTION = { OFF: 0x00, ON: 0x01, NOT_SUP: 0x02, REQ: 0x03 } as const;

export interface Prelogin {
  /** ENCRYPTION option value, undefined when absent. */
  encryption: number | undefined;
  /** The client set FEDAUTHREQUIRED (it will echo our answer in LOGIN7). */
  fedAuthRequired: boolean;
}

export function parsePrelogin(payload: Buffer): Prelogin {
  const result: Prelogin = { encryption: undefined, fedAuthRequired: false };
  let offset = 0;
  for (let count = 0; ; count++) {
    if (offset >= payload.length) throw new TdsProtocolError("PRELOGIN option table has no terminator");
    const token = payload.readUInt8(offset);
    if (token === PRELOGIN_OPTION.TERMINATOR) return result;
    if (count > 32 || offset + 5 > payload.length) throw new TdsProtocolError("PRELOGIN option table is malformed");
    const dataOffset = payload.readUInt16BE(offset + 1);
    const dataLength = payload.readUInt16BE(offset + 3);
    if (dataOffset + dataLength > payload.length) throw new TdsProtocolError(`PRELOGIN option 0x${token.toString(16)} points outside the message`);
    if (token === PRELOGIN_OPTION.ENCRYPTION && dataLength >= 1) result.encryption = payload.readUInt8(dataOffset);
    if (token === PRELOGIN_OPTION.FEDAUTHREQUIRED && dataLength >= 1) result.fedAuthRequired = payload.readUInt8(dataOffset) === 0x01;
    offset += 5;
  }
}

/** The server's PRELOGIN answer: version, encryption, instance, thread ID, MARS, and FEDAUTHREQUIRED when asked. */
export function buildPreloginResponse(options: { encryption: number; fedAuthRequired: boolean; version: [number, number, number] }): Buffer {
  const version = Buffer.alloc(6);
  version.writeUInt8(options.version[0], 0);
  version.writeUInt8(options.version[1], 1);
  version.writeUInt16BE(options.version[2], 2);
  const entries: Array<[number, Buffer]> = [
    [PRELOGIN_OPTION.VERSION, version],
    [PRELOGIN_OPTION.ENCRYPTION, Buffer.from([options.encryption])],
    [PRELOGIN_OPTION.INSTOPT, Buffer.from([0x00])],
    [PRELOGIN_OPTION.THREADID, Buffer.alloc(0)],
    [PRELOGIN_OPTION.MARS, Buffer.from([0x00])],
  ];
  if (options.fedAuthRequired) entries.push([PRELOGIN_OPTION.FEDAUTHREQUIRED, Buffer.from([0x01])]);
  const table = Buffer.alloc(entries.length * 5 + 1);
  let dataOffset = table.length;
  entries.forEach(([token, data], i) => {
    table.writeUInt8(token, i * 5);
    table.writeUInt16BE(dataOffset, i * 5 + 1);
    table.writeUInt16BE(data.length, i * 5 + 3);
    dataOffset += data.length;
  });
  table.writeUInt8(PRELOGIN_OPTION.TERMINATOR, entries.length * 5);
  return Buffer.concat([table, ...entries.map(([, data]) => data)]);
}

const FEATURE_FEDAUTH = 0x02;
const FEATURE_TERMINATOR = 0xff;
const FEDAUTH_LIBRARY = { SECURITYTOKEN: 0x01, ADAL: 0x02 } as const;
const LOGIN7_FIXED_BYTES = 94;
const OPTION_FLAGS3_EXTENSION = 0x10;
/** An access token as UCS-2 is a few KB; anything this large is not one. */
const MAX_TOKEN_BYTES = 256 * 1024;

export type FedAuth =
  /** Library ADAL (tedious' token-credential and azure-active-directory-* logins): the token follows in a FEDAUTH_TOKEN message. */
  | { library: "adal"; workflow: number; echo: boolean }
  /** Library SECURITYTOKEN (tedious' azure-active-directory-access-token): the token is inside LOGIN7. */
  | { library: "securitytoken"; token: string; echo: boolean };

export interface Login7 {
  tdsVersion: number;
  packetSize: number;
  hostName: string;
  userName: string;
  appName: string;
  serverName: string;
  libraryName: string;
  database: string;
  fedAuth: FedAuth | undefined;
}

export function parseLogin7(payload: Buffer): Login7 {
  if (payload.length < LOGIN7_FIXED_BYTES) throw new TdsProtocolError(`LOGIN7 is ${payload.length} bytes, shorter than its ${LOGIN7_FIXED_BYTES}-byte fixed part`);
  const declared = payload.readUInt32LE(0);
  if (declared > payload.length) throw new TdsProtocolError(`LOGIN7 declares ${declared} bytes but carries ${payload.length}`);
  const text = (at: number): string => {
    const offset = payload.readUInt16LE(at);
    const chars = payload.readUInt16LE(at + 2);
    if (chars === 0) return "";
    if (offset + chars * 2 > payload.length) throw new TdsProtocolError(`LOGIN7 field at ${at} points outside the message`);
    return payload.toString("utf16le", offset, offset + chars * 2);
  };
  const login: Login7 = {
    tdsVersion: payload.readUInt32LE(4),
    packetSize: payload.readUInt32LE(8),
    hostName: text(36),
    userName: text(40),
    appName: text(48),
    serverName: text(52),
    libraryName: text(60),
    database: text(68),
    fedAuth: undefined,
  };
  const optionFlags3 = payload.readUInt8(27);
  if ((optionFlags3 & OPTION_FLAGS3_EXTENSION) !== 0) {
    const ibExtension = payload.readUInt16LE(56);
    const cbExtension = payload.readUInt16LE(58);
    if (cbExtension >= 4) {
      if (ibExtension + 4 > payload.length) throw new TdsProtocolError("LOGIN7 extension offset points outside the message");
      login.fedAuth = parseFeatureExt(payload, payload.readUInt32LE(ibExtension));
    }
  }
  return login;
}

function parseFeatureExt(payload: Buffer, start: number): FedAuth | undefined {
  let offset = start;
  let fedAuth: FedAuth | undefined;
  for (let count = 0; count < 64; count++) {
    if (offset >= payload.length) throw new TdsProtocolError("LOGIN7 FeatureExt has no terminator");
    const featureId = payload.readUInt8(offset);
    if (featureId === FEATURE_TERMINATOR) return fedAuth;
    if (offset + 5 > payload.length) throw new TdsProtocolError("LOGIN7 FeatureExt entry is truncated");
    const length = payload.readUInt32LE(offset + 1);
    const data = offset + 5;
    if (data + length > payload.length) throw new TdsProtocolError(`LOGIN7 feature 0x${featureId.toString(16)} is longer than the message`);
    if (featureId === FEATURE_FEDAUTH) fedAuth = parseFedAuthFeature(payload.subarray(data, data + length));
    offset = data + length;
  }
  throw new TdsProtocolError("LOGIN7 FeatureExt has too many entries");
}

function parseFedAuthFeature(data: Buffer): FedAuth {
  if (data.length < 1) throw new TdsProtocolError("FEDAUTH feature is empty");
  const options = data.readUInt8(0);
  const library = options >> 1;
  const echo = (options & 0x01) === 0x01;
  if (library === FEDAUTH_LIBRARY.ADAL) {
    if (data.length < 2) throw new TdsProtocolError("FEDAUTH ADAL feature has no workflow");
    return { library: "adal", workflow: data.readUInt8(1), echo };
  }
  if (library === FEDAUTH_LIBRARY.SECURITYTOKEN) {
    if (data.length < 5) throw new TdsProtocolError("FEDAUTH SECURITYTOKEN feature has no token length");
    const tokenBytes = data.readUInt32LE(1);
    if (tokenBytes > MAX_TOKEN_BYTES || 5 + tokenBytes > data.length) throw new TdsProtocolError("FEDAUTH token length is out of bounds");
    return { library: "securitytoken", token: data.toString("utf16le", 5, 5 + tokenBytes), echo };
  }
  throw new TdsProtocolError(`FEDAUTH library 0x${library.toString(16)} is not supported`);
}

/** FEDAUTH_TOKEN (packet type 0x08): DataLen, FedAuthTokenLen, the token as UCS-2, an optional nonce. */
export function parseFedAuthToken(payload: Buffer): string {
  if (payload.length < 8) throw new TdsProtocolError("FEDAUTH_TOKEN is shorter than its two length fields");
  const dataLength = payload.readUInt32LE(0);
  const tokenBytes = payload.readUInt32LE(4);
  if (dataLength + 4 > payload.length || tokenBytes + 4 > dataLength || tokenBytes > MAX_TOKEN_BYTES) {
    throw new TdsProtocolError("FEDAUTH_TOKEN lengths are out of bounds");
  }
  return payload.toString("utf16le", 8, 8 + tokenBytes);
}
