import { Connection, Request, TYPES, type ConnectionConfiguration } from "tedious";
import type { TdsServer } from "../../src/index";

/** The TokenCredential shape (@azure/core-auth) tedious calls, plus the scopes it was asked for. */
export interface RecordingCredential {
  scopes: string[];
  getToken(scope: string | string[]): Promise<{ token: string; expiresOnTimestamp: number }>;
}

/** A TokenCredential that hands out whatever `mint` returns and records the scopes tedious asked for. */
export function recordingCredential(mint: () => Promise<string>): RecordingCredential {
  const scopes: string[] = [];
  return {
    scopes,
    async getToken(scope: string | string[]) {
      scopes.push(...(Array.isArray(scope) ? scope : [scope]));
      return { token: await mint(), expiresOnTimestamp: Date.now() + 3_600_000 };
    },
  };
}

/** Connects the unmodified tedious client to the responder, trusting only the testbed CA. */
export async function connect(
  server: TdsServer,
  caPem: string,
  authentication: ConnectionConfiguration["authentication"],
  options: { encrypt?: boolean | "strict"; database?: string } = {},
): Promise<Connection> {
  const connection = new Connection({
    server: "127.0.0.1",
    authentication,
    options: {
      port: server.port,
      database: options.database ?? server.database,
      encrypt: options.encrypt ?? true,
      trustServerCertificate: false,
      cryptoCredentialsDetails: { ca: caPem },
      connectTimeout: 10_000,
    },
  });
  await new Promise<void>((resolve, reject) => connection.connect((error) => (error ? reject(error) : resolve())));
  return connection;
}

export type Row = Record<string, unknown>;

/** Runs a SQL batch; resolves with its rows (one object per row, keyed by column name or position). */
export function query(connection: Connection, sql: string): Promise<Row[]> {
  return new Promise((resolve, reject) => {
    const rows: Row[] = [];
    const request = new Request(sql, (error) => (error ? reject(error) : resolve(rows)));
    request.on("row", (columns: Array<{ value: unknown; metadata: { colName: string } }>) => {
      rows.push(Object.fromEntries(columns.map((c, i) => [c.metadata.colName || `#${i}`, c.value])));
    });
    connection.execSqlBatch(request);
  });
}

export function close(connection: Connection): Promise<void> {
  return new Promise((resolve) => {
    connection.once("end", () => resolve());
    connection.close();
  });
}

/** Runs `sql` through tedious' execSql (RPC sp_executesql), with optional typed parameters. */
export function execSql(connection: Connection, sql: string, parameters: Array<{ name: string; value: number }> = []): Promise<Row[]> {
  return new Promise((resolve, reject) => {
    const rows: Row[] = [];
    const request = new Request(sql, (error) => (error ? reject(error) : resolve(rows)));
    for (const p of parameters) request.addParameter(p.name, TYPES.Int, p.value);
    request.on("row", (columns: Array<{ value: unknown; metadata: { colName: string } }>) => {
      rows.push(Object.fromEntries(columns.map((c, i) => [c.metadata.colName || `#${i}`, c.value])));
    });
    connection.execSql(request);
  });
}
