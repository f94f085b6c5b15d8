import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { TdsServer } from "@podidentity/testbed";
import { ExampleCloud } from "./helpers/example-cloud";

describe("sql-query example", () => {
  let env: ExampleCloud;
  let sql: TdsServer;
  let sqlEnv: Record<string, string>;

  beforeEach(async () => {
    env = await ExampleCloud.start();
    sql = await new TdsServer({ tokenIssuer: env.cloud.tokenIssuer, tenantId: env.cloud.tenantId, tls: await env.cloud.tlsFor(), database: "orders" }).start();
    sqlEnv = { SQL_SERVER: "127.0.0.1", SQL_PORT: String(sql.port), SQL_DATABASE: "orders" };
  });
  afterEach(async () => {
    await sql.close();
    await env.close();
  });

  it("logs in with tedious token-credential and the node identity's SQL token, and prints the rows", async () => {
    // CREATE USER [example-app] FROM EXTERNAL PROVIDER
    sql.addUser("example-app", { appId: env.identity.clientId });

    const result = await env.runApp("sql-query", sqlEnv);

    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`connected: 127.0.0.1:${sql.port}, database orders (TDS 7_4)`);
    expect(result.stdout).toContain(`row 1: one=1, login_name="${env.identity.clientId}@${env.cloud.tenantId}"`);
    expect(result.stdout).toContain("1 row(s)");
    expect(sql.logins).toEqual([
      expect.objectContaining({ outcome: "ok", library: "adal", encryption: "tls-in-prelogin", principal: expect.objectContaining({ oid: env.identity.principalId }) }),
    ]);
    expect(env.imds.counters.tokensIssued).toBe(1);
  });

  it("runs SQL_QUERY over TDS 8.0 strict encryption", async () => {
    sql.addUser("example-app", { objectId: env.identity.principalId });

    const result = await env.runApp("sql-query", { ...sqlEnv, SQL_ENCRYPT: "strict", SQL_QUERY: "SELECT USER_NAME() AS db_user, DB_NAME() AS db" });

    expect(result.code).toBe(0);
    expect(result.stdout).toContain('row 1: db_user="example-app", db="orders"');
    expect(sql.logins.at(-1)?.encryption).toBe("strict");
  });

  it("exits 1 with Azure SQL's login failure when the identity is no database user", async () => {
    const result = await env.runApp("sql-query", sqlEnv);

    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`error: ExampleError: could not log in to 127.0.0.1:${sql.port}/orders (Azure SQL refused the token's principal`);
    expect(result.stderr).toContain("[ELOGIN]: Login failed for user '<token-identified principal>'.");
    expect(sql.logins).toEqual([expect.objectContaining({ outcome: "failed", reason: "not_a_user" })]);
  });
});
