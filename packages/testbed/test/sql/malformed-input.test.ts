import { connect as tcpConnect, type Socket } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AzureCloud, TdsServer } from "../../src/index";
import { parseFedAuthToken, parseLogin7, parsePrelogin } from "../../src/sql/tds-login";
import { encodeMessage, PACKET_TYPE, TdsMessageReader, TdsProtocolError } from "../../src/sql/tds-packets";
import { parseRpcRequest } from "../../src/sql/rpc-request";
import { sqlBatchText } from "../../src/sql/sql-batch";
import { close, connect, query, recordingCredential } from "./tedious-client";

/** Deterministic bytes (mulberry32), so a failure reproduces. */
function randomBytes(seed: number, length: number): Buffer {
  let a = seed >>> 0;
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    out[i] = ((t ^ (t >>> 14)) >>> 0) & 0xff;
  }
  return out;
}

function packet(type: number, status: number, length: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt8(type, 0);
  header.writeUInt8(status, 1);
  header.writeUInt16BE(length, 2);
  return Buffer.concat([header, body]);
}

describe("TdsServer on malformed input", () => {
  let cloud: AzureCloud;
  let server: TdsServer;

  beforeEach(async () => {
    cloud = await AzureCloud.create();
    server = await new TdsServer({ tokenIssuer: cloud.tokenIssuer, tenantId: cloud.tenantId, tls: await cloud.tlsFor(), maxMessageBytes: 64 * 1024 }).start();
  });
  afterEach(async () => {
    await server.close();
    await cloud.close();
  });

  /** Sends `bytes` and resolves once the server has closed the connection (we never close first). */
  const serverCloses = (bytes: Buffer[]) =>
    new Promise<void>((resolve, reject) => {
      const socket: Socket = tcpConnect(server.port, "127.0.0.1", () => {
        for (const b of bytes) socket.write(b);
      });
      socket.on("error", () => undefined); // EPIPE/ECONNRESET while the server hangs up is expected
      socket.resume(); // read (and drop) whatever the server answers, e.g. a TLS alert, so its FIN is seen
      socket.on("close", () => resolve());
      socket.on("timeout", () => reject(new Error("the server kept the connection open")));
      socket.setTimeout(5_000);
    });

  it("closes the connection on broken framing, oversized messages and out-of-order messages", async () => {
    const badPrelogin = encodeMessage(PACKET_TYPE.PRELOGIN, Buffer.from([0x00, 0xff, 0xff, 0x00, 0x06, 0xff]), 4096);
    const cases: Buffer[][] = [
      [packet(PACKET_TYPE.PRELOGIN, 1, 4)], // length shorter than the header
      [Buffer.from([0x12, 0x01, 0xff, 0xff, 0, 0, 0, 0])], // 65535 > the largest packet
      [badPrelogin], // option offset outside the message
      [encodeMessage(PACKET_TYPE.LOGIN7, Buffer.alloc(100), 4096)], // LOGIN7 before PRELOGIN
      Array.from({ length: 3 }, () => packet(PACKET_TYPE.PRELOGIN, 0, 32_767, Buffer.alloc(32_759))), // no end-of-message, > maxMessageBytes
      [Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x63, 0x00, 0x00, 0x00])], // TDS 8.0 TLS whose first handshake message is no ClientHello
    ];
    for (const bytes of cases) await serverCloses(bytes);
  });

  it("cuts off a client that stalls mid-login after loginTimeoutMs", async () => {
    const impatient = await new TdsServer({ tokenIssuer: cloud.tokenIssuer, tenantId: cloud.tenantId, tls: await cloud.tlsFor(), loginTimeoutMs: 200 }).start();
    try {
      await new Promise<void>((resolve) => {
        // Half a PRELOGIN packet, then silence.
        const socket = tcpConnect(impatient.port, "127.0.0.1", () => socket.write(Buffer.from([0x12, 0x01, 0x00, 0x40])));
        socket.on("error", () => undefined);
        socket.on("close", () => resolve());
      });
      expect(impatient.loginTimeouts).toBe(1);
    } finally {
      await impatient.close();
    }
  });

  it("survives random bytes and still logs a real client in afterwards", async () => {
    for (let seed = 1; seed <= 40; seed++) {
      await new Promise<void>((resolve) => {
        const socket = tcpConnect(server.port, "127.0.0.1", () => socket.end(randomBytes(seed, 1 + (seed * 97) % 3000)));
        socket.on("error", () => undefined);
        socket.resume();
        socket.on("close", () => resolve());
      });
    }
    const identity = cloud.createUserAssignedIdentity("after-fuzz");
    server.addUser("after-fuzz", { objectId: identity.principalId });
    const credential = recordingCredential(async () =>
      (await cloud.tokenIssuer.issue({ audience: "https://database.windows.net", tenantId: cloud.tenantId, objectId: identity.principalId, appId: identity.clientId })).token,
    );
    const connection = await connect(server, cloud.ca.certPem, { type: "token-credential", options: { credential } });
    expect(await query(connection, "SELECT 1 AS ok")).toEqual([{ ok: 1 }]);
    await close(connection);
  });

  it("parsers reject truncated and random input with TdsProtocolError, never another exception", () => {
    const parsers = [parsePrelogin, parseLogin7, parseFedAuthToken, sqlBatchText, parseRpcRequest];
    for (let seed = 1; seed <= 500; seed++) {
      const input = randomBytes(seed, seed % 200);
      for (const parse of parsers) {
        try {
          parse(input);
        } catch (error) {
          expect(error).toBeInstanceOf(TdsProtocolError);
        }
      }
    }
  });

  it("the message reader bounds messages and queued requests", () => {
    const reader = new TdsMessageReader(4096);
    const failures: unknown[] = [];
    reader.next().catch((e: unknown) => failures.push(e));
    reader.push(packet(PACKET_TYPE.SQL_BATCH, 0, 4000, Buffer.alloc(3992)));
    reader.push(packet(PACKET_TYPE.SQL_BATCH, 1, 1000, Buffer.alloc(992)));
    return Promise.resolve().then(() => expect(failures[0]).toBeInstanceOf(TdsProtocolError));
  });
});
