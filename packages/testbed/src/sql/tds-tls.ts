// TLS for TDS, server side. Two ways a client encrypts (MS-TDS 3.3.5.1 / TDS 8.0):
//
// - `encrypt: true` (TDS 7.x): after PRELOGIN says ENCRYPT_ON, the TLS handshake records travel *inside*
//   PRELOGIN packets — each client PRELOGIN message carries one handshake flight and expects exactly one
//   message back (tedious' message-io.js startTls). Once the handshake is over, TLS records flow raw on
//   the socket and every TDS packet travels inside them.
// - `encrypt: "strict"` (TDS 8.0): TLS first, on the bare socket (ALPN "tds/8.0"), TDS inside from PRELOGIN on.
//
// Node's TLS engine does the cryptography; this file only moves its bytes: a Duplex stands in for the
// network under a server TLSSocket, and the handshake output is cut into flights by reading TLS record
// headers, because the client waits for a whole flight in one PRELOGIN message.
import { Duplex } from "node:stream";
import { TLSSocket, type SecureContext } from "node:tls";
import { TdsProtocolError } from "./tds-packets";

/** Stands in for the network under a server TLSSocket: we push what arrives, it hands us what to send. */
export class TlsTransport extends Duplex {
  #output: (chunk: Buffer) => void;

  constructor(output: (chunk: Buffer) => void) {
    super();
    this.#output = output;
  }

  /** Where the TLS engine's output goes from now on. */
  redirect(output: (chunk: Buffer) => void): void {
    this.#output = output;
  }

  /** Bytes from the peer, for the TLS engine. */
  input(chunk: Buffer): void {
    this.push(chunk);
  }

  override _read(): void {
    // Input is pushed by input(); nothing to pull.
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#output(chunk);
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    callback();
  }
}

const RECORD = { CHANGE_CIPHER_SPEC: 20, ALERT: 21, HANDSHAKE: 22 } as const;
const HANDSHAKE_SERVER_HELLO_DONE = 14;
/** A handshake flight is a few KB (certificate chain included); more means something is wrong. */
const MAX_FLIGHT_BYTES = 64 * 1024;

/**
 * Cuts a TLS 1.2 server's handshake output into flights: the first ends with ServerHelloDone, the last
 * with the (encrypted) record that follows ChangeCipherSpec — Finished. An alert also ends a flight.
 */
export class ServerFlightCutter {
  #pending: Buffer = Buffer.alloc(0);
  #collected: Buffer[] = [];
  #collectedBytes = 0;
  #handshake: Buffer = Buffer.alloc(0);
  #sawChangeCipherSpec = false;
  /** The server's Finished has been cut: the handshake is over from the server's side. */
  finished = false;

  /** Adds engine output; returns the flight's bytes once it is complete, else undefined. */
  add(chunk: Buffer): Buffer | undefined {
    this.#collected.push(chunk);
    this.#collectedBytes += chunk.length;
    if (this.#collectedBytes > MAX_FLIGHT_BYTES) throw new TdsProtocolError("TLS handshake flight too large");
    this.#pending = Buffer.concat([this.#pending, chunk]);
    let complete = false;
    while (this.#pending.length >= 5) {
      const type = this.#pending.readUInt8(0);
      const length = this.#pending.readUInt16BE(3);
      if (this.#pending.length < 5 + length) break;
      const body = this.#pending.subarray(5, 5 + length);
      this.#pending = this.#pending.subarray(5 + length);
      if (this.#sawChangeCipherSpec) {
        complete = true;
        this.finished = true;
      } else if (type === RECORD.CHANGE_CIPHER_SPEC) {
        this.#sawChangeCipherSpec = true;
      } else if (type === RECORD.ALERT) {
        complete = true;
      } else if (type === RECORD.HANDSHAKE) {
        complete = this.#walkHandshake(body) || complete;
      }
    }
    if (!complete) return undefined;
    const flight = Buffer.concat(this.#collected);
    this.#collected = [];
    this.#collectedBytes = 0;
    return flight;
  }

  /** Handshake messages may span records: walk whole ones, looking for ServerHelloDone. */
  #walkHandshake(body: Buffer): boolean {
    this.#handshake = Buffer.concat([this.#handshake, body]);
    let sawDone = false;
    while (this.#handshake.length >= 4) {
      const length = this.#handshake.readUIntBE(1, 3);
      if (this.#handshake.length < 4 + length) break;
      if (this.#handshake.readUInt8(0) === HANDSHAKE_SERVER_HELLO_DONE) sawDone = true;
      this.#handshake = this.#handshake.subarray(4 + length);
    }
    return sawDone;
  }
}

/** A server-side TLSSocket over a {@link TlsTransport}, with errors kept from crashing the process. */
export function serverTlsSocket(transport: TlsTransport, secureContext: SecureContext, alpn?: string[]): TLSSocket {
  const socket = new TLSSocket(transport, {
    isServer: true,
    secureContext,
    requestCert: false,
    ...(alpn ? { ALPNProtocols: alpn } : {}),
  });
  // Until the connection wires its own handler, a TLS failure must not become an uncaught 'error' event;
  // the handshake code learns of it through its own listener.
  socket.on("error", () => undefined);
  return socket;
}
