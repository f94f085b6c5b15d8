// TDS framing (MS-TDS 2.2.3): every message travels as packets with an 8-byte header —
// type, status (bit 0 = end of message), big-endian length including the header, SPID, packet ID, window.

export const PACKET_TYPE = {
  SQL_BATCH: 0x01,
  RPC_REQUEST: 0x03,
  TABULAR_RESULT: 0x04,
  ATTENTION: 0x06,
  FEDAUTH_TOKEN: 0x08,
  LOGIN7: 0x10,
  SSPI: 0x11,
  PRELOGIN: 0x12,
} as const;

export const PACKET_HEADER_BYTES = 8;
const STATUS_EOM = 0x01;
/** Largest packet size TDS allows (LOGIN7 PacketSize is capped at 32767 by SQL Server). */
export const MAX_PACKET_BYTES = 32_767;
export const MIN_PACKET_BYTES = 512;
/** A client sends one request and waits for its answer; a peer that keeps sending without reading is cut off. */
const MAX_QUEUED_MESSAGES = 16;

export interface TdsMessage {
  type: number;
  payload: Buffer;
}

/** The peer broke the framing rules; the connection is closed without an answer. */
export class TdsProtocolError extends Error {
  override readonly name = "TdsProtocolError";
}

/** Splits `payload` into packets of at most `packetSize` bytes, the last one flagged end-of-message. */
export function encodeMessage(type: number, payload: Buffer, packetSize: number, spid = 0x33): Buffer {
  const chunkBytes = Math.max(MIN_PACKET_BYTES, Math.min(packetSize, MAX_PACKET_BYTES)) - PACKET_HEADER_BYTES;
  const packets: Buffer[] = [];
  let offset = 0;
  let packetId = 1;
  do {
    const chunk = payload.subarray(offset, offset + chunkBytes);
    offset += chunk.length;
    const header = Buffer.alloc(PACKET_HEADER_BYTES);
    header.writeUInt8(type, 0);
    header.writeUInt8(offset >= payload.length ? STATUS_EOM : 0, 1);
    header.writeUInt16BE(PACKET_HEADER_BYTES + chunk.length, 2);
    header.writeUInt16BE(spid, 4);
    header.writeUInt8(packetId & 0xff, 6);
    packets.push(header, chunk);
    packetId++;
  } while (offset < payload.length);
  return Buffer.concat(packets);
}

/**
 * Reassembles messages from a byte stream fed with {@link push}. Bounded: a packet longer than
 * {@link MAX_PACKET_BYTES}, shorter than its header, or a message over `maxMessageBytes` is a protocol error.
 */
export class TdsMessageReader {
  readonly #maxMessageBytes: number;
  #buffer: Buffer = Buffer.alloc(0);
  #parts: Buffer[] = [];
  #partsBytes = 0;
  #partsType: number | undefined;
  readonly #ready: TdsMessage[] = [];
  #waiter: { resolve: (m: TdsMessage) => void; reject: (e: Error) => void } | undefined;
  #failure: Error | undefined;

  constructor(maxMessageBytes: number) {
    this.#maxMessageBytes = maxMessageBytes;
  }

  push(chunk: Buffer): void {
    if (this.#failure) return;
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    try {
      this.#parse();
    } catch (error) {
      this.fail(error as Error);
    }
  }

  /** Ends the stream: a pending or later {@link next} rejects with `error`. */
  fail(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    this.#buffer = Buffer.alloc(0);
    this.#parts = [];
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.reject(error);
  }

  /** Bytes received after the last complete packet (handed over when the transport changes under the reader). */
  takeRemainder(): Buffer {
    const rest = this.#buffer;
    this.#buffer = Buffer.alloc(0);
    return rest;
  }

  next(): Promise<TdsMessage> {
    const message = this.#ready.shift();
    if (message) return Promise.resolve(message);
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#waiter) return Promise.reject(new Error("TdsMessageReader: next() is already pending"));
    return new Promise((resolve, reject) => (this.#waiter = { resolve, reject }));
  }

  #parse(): void {
    while (this.#buffer.length >= PACKET_HEADER_BYTES) {
      const type = this.#buffer.readUInt8(0);
      const status = this.#buffer.readUInt8(1);
      const length = this.#buffer.readUInt16BE(2);
      if (length < PACKET_HEADER_BYTES || length > MAX_PACKET_BYTES + 1) {
        throw new TdsProtocolError(`packet length ${length} is outside ${PACKET_HEADER_BYTES}..${MAX_PACKET_BYTES + 1}`);
      }
      if (this.#buffer.length < length) return;
      if (this.#partsType !== undefined && this.#partsType !== type) {
        throw new TdsProtocolError(`packet of type 0x${type.toString(16)} inside a message of type 0x${this.#partsType.toString(16)}`);
      }
      const body = this.#buffer.subarray(PACKET_HEADER_BYTES, length);
      this.#buffer = this.#buffer.subarray(length);
      this.#partsBytes += body.length;
      if (this.#partsBytes > this.#maxMessageBytes) {
        throw new TdsProtocolError(`message larger than ${this.#maxMessageBytes} bytes`);
      }
      this.#partsType = type;
      this.#parts.push(body);
      if ((status & STATUS_EOM) !== 0) {
        const message = { type, payload: Buffer.concat(this.#parts) };
        this.#parts = [];
        this.#partsBytes = 0;
        this.#partsType = undefined;
        const waiter = this.#waiter;
        this.#waiter = undefined;
        if (waiter) waiter.resolve(message);
        else if (this.#ready.length >= MAX_QUEUED_MESSAGES) throw new TdsProtocolError(`more than ${MAX_QUEUED_MESSAGES} unanswered messages`);
        else this.#ready.push(message);
      }
    }
  }
}
