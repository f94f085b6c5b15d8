import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { createSecureContext, type SecureContext, type TLSSocket } from "node:tls";
import type { Clock } from "../clock";
import { systemClock } from "../clock";
import type { ListenOptions, TlsMaterial } from "../azure/http";
import { TokenVerificationError, type TokenIssuer } from "../azure/token-issuer";
import { parseRpcRequest, SP_EXECUTESQL } from "./rpc-request";
import { runBatch, sqlBatchText, type SessionFacts } from "./sql-batch";
import { buildPreloginResponse, ENCRYPTION, parseFedAuthToken, parseLogin7, parsePrelogin, type Login7 } from "./tds-login";
import { encodeMessage, MAX_PACKET_BYTES, MIN_PACKET_BYTES, PACKET_TYPE, TdsMessageReader, TdsProtocolError, type TdsMessage } from "./tds-packets";
import { ServerFlightCutter, serverTlsSocket, TlsTransport } from "./tds-tls";
import * as tokens from "./tds-tokens";

export const DEFAULT_TDS_SERVER_OPTIONS = {
  database: "testbed-db",
  serverName: "testbed-sql",
  /** Accepted token audiences: Azure SQL's resource, with and without the slash. */
  audiences: ["https://database.windows.net/", "https://database.windows.net"] as readonly string[],
  /** FEDAUTHINFO SPN: the resource the client asks Entra ID for (tedious scope: `${spn}.default`). */
  spn: "https://database.windows.net/",
  /** From connect to LOGINACK: a client that stalls mid-login (or never speaks) is cut off. */
  loginTimeoutMs: 30_000,
  /** Between requests once logged in (Azure SQL's own idle limit is 30 minutes). */
  idleTimeoutMs: 30 * 60_000,
  /** LOGIN7 with a token is a few KB, a SQL batch as long as its text; larger messages close the connection. */
  maxMessageBytes: 1024 * 1024,
  maxConnections: 200,
  /** Azure SQL Database's version as reported in PRELOGIN and LOGINACK. */
  version: [12, 0, 2000] as const,
} as const;

export interface TdsServerOptions extends ListenOptions {
  /** Verifies the Entra ID access tokens (signature, audience, expiry on `clock`). */
  tokenIssuer: TokenIssuer;
  /** Tokens from other tenants are refused. */
  tenantId: string;
  /** The server's leaf (from TestbedCa): encryption is mandatory, as on Azure SQL. */
  tls: TlsMaterial;
  clock?: Clock;
  database?: string;
  serverName?: string;
  /** FEDAUTHINFO STSURL; default `https://login.microsoftonline.com/{tenantId}/`. */
  stsUrl?: string;
  loginTimeoutMs?: number;
  idleTimeoutMs?: number;
  maxMessageBytes?: number;
  maxConnections?: number;
}

export type LoginFailureReason = TokenVerificationError["code"] | "tenant" | "not_a_user" | "unknown_database" | "no_fedauth";

export interface TdsLogin {
  atMs: number;
  outcome: "ok" | "failed";
  reason?: LoginFailureReason;
  /** How the client sent its token: after FEDAUTHINFO (tedious token-credential) or inside LOGIN7. */
  library?: "adal" | "securitytoken";
  encryption: "tls-in-prelogin" | "strict";
  /** Claims of a signature-valid token. */
  principal?: { oid: string; appid: string; tid: string };
  userName?: string;
  database: string;
}

export interface TdsBatch {
  atMs: number;
  /** A SQL batch (execSqlBatch), or sp_executesql through RPC (execSql). */
  kind: "batch" | "rpc";
  userName: string;
  sql: string;
  resultSets: number;
  errors: string[];
}

interface DatabaseUser {
  name: string;
  objectId?: string;
  appId?: string;
}

/** What one connection reads from and writes to: plain TDS, or TDS inside TLS once negotiated. */
interface Channel {
  reader: TdsMessageReader;
  write(data: Buffer): void;
  encryption: "none" | "tls-in-prelogin" | "strict";
  /** Plain channels only: where socket bytes go (the TLS handshake redirects them into the TLS engine). */
  setFeed?: (feed: (chunk: Buffer) => void) => void;
}

const LOGIN_FAILED = 18456;
const CANNOT_OPEN_DATABASE = 4060;
const USER_ERROR = 50000;
const FEATURE_FEDAUTH = 0x02;
const MAX_LOGGED_SQL_CHARS = 1000;
const LOG_LIMIT = 10_000;

/**
 * A minimal Azure SQL Database endpoint speaking TDS 7.4 to the unmodified tedious client: PRELOGIN with
 * mandatory encryption (TLS inside PRELOGIN, or TDS 8.0 strict), LOGIN7 with the FEDAUTH extension
 * (FEDAUTHINFO → FEDAUTH_TOKEN, or a token inside LOGIN7), token verification against the testbed's
 * issuer, database users mapped from Entra principals, and single-row answers to a documented subset of
 * SELECTs (see sql-batch.ts). It is not a SQL engine.
 */
export class TdsServer {
  readonly logins: TdsLogin[] = [];
  readonly batches: TdsBatch[] = [];
  /** Connections closed because they had not completed a login within `loginTimeoutMs`. */
  loginTimeouts = 0;
  readonly #options: TdsServerOptions;
  readonly #clock: Clock;
  readonly #users = new Map<string, DatabaseUser>();
  readonly #sockets = new Set<Socket>();
  readonly #tdsContext: SecureContext;
  readonly #strictContext: SecureContext;
  #server: Server | undefined;
  #spid = 50;

  constructor(options: TdsServerOptions) {
    const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_TDS_SERVER_OPTIONS.maxMessageBytes;
    if (!(maxMessageBytes >= 4096)) throw new RangeError(`TdsServer: maxMessageBytes must be >= 4096, got ${maxMessageBytes}`);
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    // tedious caps TLS-inside-PRELOGIN at TLS 1.2; the flight cutter relies on TLS 1.2's handshake shape.
    this.#tdsContext = createSecureContext({ cert: options.tls.certPem, key: options.tls.keyPem, maxVersion: "TLSv1.2" });
    this.#strictContext = createSecureContext({ cert: options.tls.certPem, key: options.tls.keyPem });
  }

  get database(): string {
    return this.#options.database ?? DEFAULT_TDS_SERVER_OPTIONS.database;
  }

  get host(): string {
    return this.#options.host ?? "127.0.0.1";
  }

  get port(): number {
    const address = this.#server?.address() as AddressInfo | null | undefined;
    if (!address) throw new Error("TdsServer: not started; call start() first");
    return address.port;
  }

  /**
   * Maps an Entra principal to a database user, as `CREATE USER [name] FROM EXTERNAL PROVIDER` does on
   * Azure SQL; only mapped principals can log in. Match by object ID or application (client) ID.
   */
  addUser(name: string, principal: { objectId?: string; appId?: string }): void {
    if (!principal.objectId && !principal.appId) throw new TypeError("TdsServer.addUser: give objectId or appId");
    this.#users.set(name.toLowerCase(), { name, ...principal });
  }

  removeUser(name: string): boolean {
    return this.#users.delete(name.toLowerCase());
  }

  async start(): Promise<this> {
    const server = createServer((socket) => this.#accept(socket));
    server.maxConnections = this.#options.maxConnections ?? DEFAULT_TDS_SERVER_OPTIONS.maxConnections;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.#options.port ?? 0, this.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.#server = server;
    return this;
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const socket of this.#sockets) socket.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  #accept(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on("close", () => this.#sockets.delete(socket));
    // Resets and protocol violations end the connection, never the process.
    socket.on("error", () => socket.destroy());
    socket.setNoDelay(true);
    let loggedIn = false;
    // One timer: loginTimeoutMs until the login completes, then idleTimeoutMs (set in #serve).
    socket.setTimeout(this.#options.loginTimeoutMs ?? DEFAULT_TDS_SERVER_OPTIONS.loginTimeoutMs, () => {
      if (!loggedIn) this.loginTimeouts++;
      socket.destroy();
    });
    this.#serve(socket, () => (loggedIn = true)).catch(() => socket.destroy());
  }

  async #serve(socket: Socket, onLoggedIn: () => void): Promise<void> {
    const spid = ++this.#spid;
    const channel = await this.#openChannel(socket);
    const prelogin = await expect(channel.reader, PACKET_TYPE.PRELOGIN);
    const client = parsePrelogin(prelogin.payload);
    const clientEncrypts = client.encryption === ENCRYPTION.ON || client.encryption === ENCRYPTION.REQ;
    const answer = channel.encryption === "strict" ? ENCRYPTION.NOT_SUP : clientEncrypts ? ENCRYPTION.ON : ENCRYPTION.REQ;
    const response = buildPreloginResponse({ encryption: answer, fedAuthRequired: client.fedAuthRequired, version: [...DEFAULT_TDS_SERVER_OPTIONS.version] });
    channel.write(encodeMessage(PACKET_TYPE.TABULAR_RESULT, response, 4096, spid));
    if (answer === ENCRYPTION.REQ) {
      // Azure SQL refuses unencrypted connections: the client reads ENCRYPT_REQ and gives up (or must encrypt).
      socket.end();
      return;
    }
    if (channel.encryption === "none") await this.#startTlsInPrelogin(socket, channel, spid);

    const login = parseLogin7((await expect(channel.reader, PACKET_TYPE.LOGIN7)).payload);
    const packetSize = Math.max(MIN_PACKET_BYTES, Math.min(login.packetSize || 4096, MAX_PACKET_BYTES));
    const send = (payload: Buffer) => channel.write(encodeMessage(PACKET_TYPE.TABULAR_RESULT, payload, packetSize, spid));
    const session = await this.#login(channel, login, send);
    if (!session) {
      socket.end();
      return;
    }
    onLoggedIn();
    socket.setTimeout(this.#options.idleTimeoutMs ?? DEFAULT_TDS_SERVER_OPTIONS.idleTimeoutMs);
    await this.#serveRequests(channel, send, { ...session, spid });
  }

  /** Decides on the first byte: 0x16 is a TLS ClientHello (TDS 8.0 strict), anything else plain TDS. */
  #openChannel(socket: Socket): Promise<Channel> {
    const maxMessageBytes = this.#options.maxMessageBytes ?? DEFAULT_TDS_SERVER_OPTIONS.maxMessageBytes;
    return new Promise((resolve, reject) => {
      const reader = new TdsMessageReader(maxMessageBytes);
      socket.on("close", () => {
        reader.fail(new Error("connection closed"));
        reject(new Error("connection closed before the first byte")); // no-op once resolved
      });
      let feed = (chunk: Buffer) => {
        if (chunk[0] === 0x16) {
          const transport = new TlsTransport((out) => socket.write(out));
          const tls = serverTlsSocket(transport, this.#strictContext, ["tds/8.0"]);
          wireTls(socket, tls, reader);
          feed = (c) => transport.input(c);
          transport.input(chunk);
          resolve({ reader, write: (data) => tls.write(data), encryption: "strict" });
        } else {
          feed = (c) => reader.push(c);
          reader.push(chunk);
          // The TLS handshake swaps the feed, the reader and the writer under the same channel.
          resolve({ reader, write: (data) => socket.write(data), encryption: "none", setFeed: (f) => (feed = f) });
        }
      };
      socket.on("data", (chunk: Buffer) => feed(chunk));
    });
  }

  /** TLS records inside PRELOGIN packets until the handshake is over, then raw TLS with TDS inside. */
  async #startTlsInPrelogin(socket: Socket, channel: Channel, spid: number): Promise<void> {
    const cutter = new ServerFlightCutter();
    let flightDone: (() => void) | undefined;
    let failed: ((e: Error) => void) | undefined;
    const transport = new TlsTransport((out) => {
      let flight: Buffer | undefined;
      try {
        flight = cutter.add(out);
      } catch (error) {
        failed?.(error as Error);
        return;
      }
      if (!flight) return;
      socket.write(encodeMessage(PACKET_TYPE.PRELOGIN, flight, 4096, spid));
      if (cutter.finished) transport.redirect((raw) => socket.write(raw));
      flightDone?.();
    });
    const tls = serverTlsSocket(transport, this.#tdsContext);
    const plainReader = channel.reader;
    const tlsReader = new TdsMessageReader(this.#options.maxMessageBytes ?? DEFAULT_TDS_SERVER_OPTIONS.maxMessageBytes);
    const tlsError = new Promise<never>((_, reject) => {
      failed = reject;
      tls.once("error", reject);
    });
    tlsError.catch(() => undefined);
    while (!cutter.finished) {
      const message = await Promise.race([expect(plainReader, PACKET_TYPE.PRELOGIN), tlsError]);
      const answered = new Promise<void>((resolve) => (flightDone = resolve));
      transport.input(message.payload);
      await Promise.race([answered, tlsError]);
    }
    // From here the client sends raw TLS records: they go to the engine, its cleartext to a new reader.
    channel.setFeed?.((chunk) => transport.input(chunk));
    const rest = plainReader.takeRemainder();
    if (rest.length > 0) transport.input(rest);
    wireTls(socket, tls, tlsReader);
    channel.reader = tlsReader;
    channel.write = (data) => tls.write(data);
    channel.encryption = "tls-in-prelogin";
  }

  /** LOGIN7 → (FEDAUTHINFO → FEDAUTH_TOKEN) → verified token → mapped user → LOGINACK; undefined when refused. */
  async #login(channel: Channel, login: Login7, send: (payload: Buffer) => void): Promise<{ facts: Omit<SessionFacts, "spid"> } | undefined> {
    const database = login.database || this.database;
    const encryption = channel.encryption === "strict" ? "strict" : "tls-in-prelogin";
    const record = (entry: Omit<TdsLogin, "atMs" | "database" | "encryption">) => {
      if (this.logins.length >= LOG_LIMIT) this.logins.shift();
      this.logins.push({ atMs: this.#clock.now(), database, encryption, ...entry });
    };
    const refuse = (reason: LoginFailureReason, name: string, extra: Partial<TdsLogin> = {}, before: Buffer[] = []) => {
      record({ outcome: "failed", reason, library: login.fedAuth?.library, ...extra });
      send(Buffer.concat([...before, tokens.errorOrInfo(this.#message(LOGIN_FAILED, 14, `Login failed for user '${name}'.`)), tokens.done(tokens.DONE_STATUS.ERROR)]));
      return undefined;
    };
    const fedAuth = login.fedAuth;
    if (!fedAuth) return refuse("no_fedauth", login.userName);

    let token: string;
    if (fedAuth.library === "securitytoken") {
      token = fedAuth.token;
    } else {
      send(tokens.fedAuthInfo(this.#options.stsUrl ?? `https://login.microsoftonline.com/${this.#options.tenantId}/`, DEFAULT_TDS_SERVER_OPTIONS.spn));
      token = parseFedAuthToken((await expect(channel.reader, PACKET_TYPE.FEDAUTH_TOKEN)).payload);
    }
    // Azure SQL never names the principal of a refused token: it says '<token-identified principal>'.
    const anonymous = "<token-identified principal>";
    let claims: { oid?: string; appid?: string; tid?: string };
    try {
      ({ claims } = await this.#options.tokenIssuer.verify(token, DEFAULT_TDS_SERVER_OPTIONS.audiences));
    } catch (error) {
      // Each verification failure is logged with its reason; the client sees the same 18456 for all.
      if (error instanceof TokenVerificationError) return refuse(error.code, anonymous);
      throw error;
    }
    const principal = { oid: String(claims.oid ?? ""), appid: String(claims.appid ?? ""), tid: String(claims.tid ?? "") };
    if (principal.tid.toLowerCase() !== this.#options.tenantId.toLowerCase()) return refuse("tenant", anonymous, { principal });
    const user = [...this.#users.values()].find(
      (u) => (u.objectId !== undefined && u.objectId.toLowerCase() === principal.oid.toLowerCase()) || (u.appId !== undefined && u.appId.toLowerCase() === principal.appid.toLowerCase()),
    );
    if (!user) return refuse("not_a_user", anonymous, { principal });
    if (database.toLowerCase() !== this.database.toLowerCase()) {
      const cannotOpen = tokens.errorOrInfo(this.#message(CANNOT_OPEN_DATABASE, 11, `Cannot open database "${database}" requested by the login. The login failed.`));
      return refuse("unknown_database", anonymous, { principal, userName: user.name }, [cannotOpen]);
    }

    record({ outcome: "ok", library: fedAuth.library, principal, userName: user.name });
    const packetSize = Math.max(MIN_PACKET_BYTES, Math.min(login.packetSize || 4096, MAX_PACKET_BYTES));
    const [major, minor, build] = DEFAULT_TDS_SERVER_OPTIONS.version;
    send(
      Buffer.concat([
        tokens.envChange({ type: "database", newValue: this.database, oldValue: "master" }),
        tokens.errorOrInfo(this.#message(5701, 0, `Changed database context to '${this.database}'.`)),
        tokens.envChange({ type: "collation", newValue: tokens.DEFAULT_COLLATION }),
        tokens.loginAck("Microsoft SQL Server", [major, minor, build >> 8, build & 0xff]),
        tokens.featureExtAck([{ id: FEATURE_FEDAUTH, data: Buffer.alloc(0) }]),
        tokens.envChange({ type: "packetSize", newValue: packetSize, oldValue: packetSize }),
        tokens.done(tokens.DONE_STATUS.FINAL),
      ]),
    );
    return {
      facts: {
        loginName: `${principal.appid}@${principal.tid}`,
        userName: user.name,
        database: this.database,
        version: `Microsoft SQL Azure (RTM) - ${major}.${minor}.${build}.8 (podidentity testbed TDS responder, not a SQL engine)`,
        serverName: this.#options.serverName ?? DEFAULT_TDS_SERVER_OPTIONS.serverName,
      },
    };
  }

  async #serveRequests(channel: Channel, send: (payload: Buffer) => void, session: { facts: Omit<SessionFacts, "spid">; spid: number }): Promise<void> {
    const facts: SessionFacts = { ...session.facts, spid: session.spid };
    for (;;) {
      let message: TdsMessage;
      try {
        message = await channel.reader.next();
      } catch {
        return; // closed by the client, or a protocol error: the socket is being torn down
      }
      if (message.type === PACKET_TYPE.SQL_BATCH) {
        send(this.#answer(sqlBatchText(message.payload), facts, "batch"));
      } else if (message.type === PACKET_TYPE.ATTENTION) {
        send(tokens.done(tokens.DONE_STATUS.ATTN));
      } else if (message.type === PACKET_TYPE.RPC_REQUEST) {
        send(this.#answerRpc(message.payload, facts));
      } else {
        throw new TdsProtocolError(`unexpected message type 0x${message.type.toString(16)} after login`);
      }
    }
  }

  /** sp_executesql without declared parameters runs its statement; any other RPC answers error 50000. */
  #answerRpc(payload: Buffer, facts: SessionFacts): Buffer {
    const call = parseRpcRequest(payload);
    const isExecuteSql = call.procId === SP_EXECUTESQL || call.procName?.toLowerCase() === "sp_executesql";
    let refusal: string | undefined;
    if (!isExecuteSql) refusal = `The testbed TDS responder runs only sp_executesql (tedious execSql), not '${call.procName ?? `procedure ${call.procId}`}'.`;
    else if (call.statement === undefined) refusal = "sp_executesql needs its @statement as an NVARCHAR parameter.";
    else if (call.declarations !== undefined && call.declarations.trim() !== "") refusal = "The testbed TDS responder does not support query parameters; inline literal values.";
    if (refusal !== undefined) {
      this.#log(facts, "rpc", call.statement ?? "", 0, [refusal]);
      return Buffer.concat([
        tokens.errorOrInfo(this.#message(USER_ERROR, 16, refusal)),
        tokens.returnStatus(0),
        tokens.done(tokens.DONE_STATUS.ERROR, tokens.CURCMD_EXECUTE, 0, tokens.TOKEN.DONEPROC),
      ]);
    }
    return this.#answer(call.statement!, facts, "rpc");
  }

  /**
   * One result set (or DONE) per statement. Inside sp_executesql the statement tokens end with DONEINPROC and
   * the call with RETURNSTATUS + DONEPROC, as SQL Server answers a procedure call.
   */
  #answer(sql: string, facts: SessionFacts, kind: TdsBatch["kind"]): Buffer {
    const results = runBatch(sql, facts);
    const parts: Buffer[] = [];
    const errors: string[] = [];
    const doneType = kind === "rpc" ? tokens.TOKEN.DONEINPROC : tokens.TOKEN.DONE;
    results.forEach((result, i) => {
      const more = kind === "rpc" || i < results.length - 1 ? tokens.DONE_STATUS.MORE : 0;
      if (result.kind === "rows") {
        parts.push(tokens.singleRowResult(result.columns), tokens.done(more | tokens.DONE_STATUS.COUNT, tokens.CURCMD_SELECT, 1, doneType));
      } else if (result.kind === "ok") {
        parts.push(tokens.done(more, 0, 0, doneType));
      } else {
        errors.push(result.message);
        parts.push(tokens.errorOrInfo(this.#message(USER_ERROR, 16, result.message)), tokens.done(more | tokens.DONE_STATUS.ERROR, 0, 0, doneType));
      }
    });
    if (kind === "rpc") {
      const status = errors.length > 0 ? tokens.DONE_STATUS.ERROR : tokens.DONE_STATUS.FINAL;
      parts.push(tokens.returnStatus(0), tokens.done(status, tokens.CURCMD_EXECUTE, 0, tokens.TOKEN.DONEPROC));
    }
    this.#log(facts, kind, sql, results.filter((r) => r.kind === "rows").length, errors);
    return Buffer.concat(parts);
  }

  #log(facts: SessionFacts, kind: TdsBatch["kind"], sql: string, resultSets: number, errors: string[]): void {
    if (this.batches.length >= LOG_LIMIT) this.batches.shift();
    this.batches.push({
      atMs: this.#clock.now(),
      kind,
      userName: facts.userName,
      sql: sql.slice(0, MAX_LOGGED_SQL_CHARS),
      resultSets,
      errors,
    });
  }

  #message(number: number, severity: number, message: string): tokens.ServerMessage {
    return { number, state: 1, severity, message, serverName: this.#options.serverName ?? DEFAULT_TDS_SERVER_OPTIONS.serverName };
  }
}

/** Reads the next message and checks its type; anything else breaks the login sequence. */
async function expect(reader: TdsMessageReader, type: number): Promise<TdsMessage> {
  const message = await reader.next();
  if (message.type !== type) throw new TdsProtocolError(`expected message type 0x${type.toString(16)}, got 0x${message.type.toString(16)}`);
  return message;
}

/** Cleartext from the TLS engine feeds `reader`; a TLS failure closes the connection. */
function wireTls(socket: Socket, tls: TLSSocket, reader: TdsMessageReader): void {
  tls.on("data", (chunk: Buffer) => reader.push(chunk));
  socket.on("close", () => tls.destroy());
  tls.on("error", (error) => {
    reader.fail(error);
    socket.destroy();
  });
  tls.on("close", () => reader.fail(new Error("TLS closed")));
}
