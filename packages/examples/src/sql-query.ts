// sql-query: connects to Azure SQL with the pod's identity (tedious' `token-credential` authentication)
// and runs one query, printing the result rows.
//
//   SQL_SERVER=myserver.database.windows.net SQL_DATABASE=mydb node dist/sql-query.js
//
// Env: SQL_SERVER, SQL_DATABASE (required); SQL_PORT (default 1433); SQL_QUERY (default
// "SELECT 1 AS one, SUSER_SNAME() AS login_name"); SQL_ENCRYPT (true | strict, default true);
// EXAMPLE_INTERVAL_SECONDS (repeat until SIGTERM, one new connection per round); EXAMPLE_CREDENTIAL, AZURE_CLIENT_ID, AZURE_POD_IDENTITY_AUTHORITY_HOST (see credential.ts).
// The identity needs a database user: CREATE USER [<identity name>] FROM EXTERNAL PROVIDER.
import { Connection, Request } from "tedious";
import { createExampleCredential } from "./credential";
import { ExampleError, requireEnv, runExample, type ExampleApp } from "./run-example";

const DEFAULT_QUERY = "SELECT 1 AS one, SUSER_SNAME() AS login_name";
/**
 * tedious bounds the whole login — getToken included — by connectTimeout (15 s by default). A new pod's
 * first token can take longer while its identity is being assigned (NMI holds the request up to 20 s), so
 * allow a minute.
 */
const CONNECT_TIMEOUT_MS = 60_000;

async function setup(env = process.env): Promise<ExampleApp> {
  const server = requireEnv(env, "SQL_SERVER", "myserver.database.windows.net");
  const database = requireEnv(env, "SQL_DATABASE", "mydb");
  const port = Number(env["SQL_PORT"] ?? "1433");
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ExampleError(`SQL_PORT must be a TCP port, got "${env["SQL_PORT"]}"`);
  const encryptSetting = env["SQL_ENCRYPT"] ?? "true";
  if (encryptSetting !== "true" && encryptSetting !== "strict") throw new ExampleError(`SQL_ENCRYPT must be "true" or "strict", got "${encryptSetting}"`);
  const query = env["SQL_QUERY"] ?? DEFAULT_QUERY;
  const { credential, description, close } = createExampleCredential(env);
  console.log(`credential: ${description}`);

  const run = async () => {
    const connection = new Connection({
      server,
      // tedious calls credential.getToken("https://database.windows.net/.default") on every new connection and
      // caches nothing: sharing one PodIdentityCredential is what keeps token requests down.
      authentication: { type: "token-credential", options: { credential } },
      options: {
        port,
        database,
        // Azure SQL requires TLS for Entra ID logins; "strict" is TDS 8.0 (TLS before any TDS byte).
        encrypt: encryptSetting === "strict" ? "strict" : true,
        trustServerCertificate: false,
        connectTimeout: CONNECT_TIMEOUT_MS,
      },
    });
    const ended = new Promise<void>((resolve) => connection.once("end", () => resolve()));
    try {
      await new Promise<void>((resolve, reject) => connection.connect((error) => (error ? reject(error) : resolve())));
    } catch (error) {
      const refused = (error as { code?: unknown }).code === "ELOGIN";
      const hint = refused ? " (Azure SQL refused the token's principal: does the identity have a user in this database? CREATE USER [<identity name>] FROM EXTERNAL PROVIDER)" : "";
      throw new ExampleError(`could not log in to ${server}:${port}/${database}${hint}`, { cause: error });
    }
    console.log(`connected: ${server}:${port}, database ${database} (TDS ${connection.config.options.tdsVersion})`);
    try {
      const rows = await runBatch(connection, query);
      console.log(`query: ${query}`);
      rows.forEach((row, i) => console.log(`row ${i + 1}: ${row.map(([name, value]) => `${name || "(no name)"}=${JSON.stringify(value)}`).join(", ")}`));
      console.log(`${rows.length} row(s)`);
    } finally {
      connection.close();
      await ended;
    }
  };
  return { run, close };
}

/** Runs `sql` as a SQL batch (no parameters) and collects the rows as [column name, value] pairs. */
function runBatch(connection: Connection, sql: string): Promise<Array<Array<[string, unknown]>>> {
  return new Promise((resolve, reject) => {
    const rows: Array<Array<[string, unknown]>> = [];
    const request = new Request(sql, (error) => {
      if (error) reject(new ExampleError(`the query failed: ${sql}`, { cause: error }));
      else resolve(rows);
    });
    request.on("row", (columns: Array<{ value: unknown; metadata: { colName: string } }>) => {
      rows.push(columns.map((c) => [c.metadata.colName, c.value]));
    });
    connection.execSqlBatch(request);
  });
}

runExample(() => setup());
