import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Connection } from "tedious";
import { AzureCloud, ManualClock, TdsServer, TokenIssuer, type UserAssignedIdentity } from "../../src/index";
import { close, connect, execSql, query, recordingCredential } from "./tedious-client";

const SQL_AUDIENCE = "https://database.windows.net/";

describe("TdsServer with the unmodified tedious client", () => {
  let clock: ManualClock;
  let cloud: AzureCloud;
  let server: TdsServer;
  let identity: UserAssignedIdentity;
  const open: Connection[] = [];

  const mint = (overrides: { audience?: string; issuer?: TokenIssuer; tenantId?: string; lifetimeMs?: number } = {}) =>
    (overrides.issuer ?? cloud.tokenIssuer)
      .issue({
        audience: overrides.audience ?? SQL_AUDIENCE,
        tenantId: overrides.tenantId ?? cloud.tenantId,
        objectId: identity.principalId,
        appId: identity.clientId,
        managedIdentityResourceId: identity.id,
        lifetimeMs: overrides.lifetimeMs,
      })
      .then((t) => t.token);

  const login = async (credential = recordingCredential(() => mint()), options: { encrypt?: boolean | "strict"; database?: string } = {}) => {
    const connection = await connect(server, cloud.ca.certPem, { type: "token-credential", options: { credential } }, options);
    open.push(connection);
    return connection;
  };

  beforeEach(async () => {
    clock = new ManualClock();
    cloud = await AzureCloud.create({ clock });
    identity = cloud.createUserAssignedIdentity("orders-api");
    server = await new TdsServer({ tokenIssuer: cloud.tokenIssuer, tenantId: cloud.tenantId, tls: await cloud.tlsFor(), clock, database: "orders" }).start();
    server.addUser("orders-api", { appId: identity.clientId });
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => close(c)));
    await server.close();
    await cloud.close();
  });

  it("logs in with token-credential over TLS-in-PRELOGIN: FEDAUTHINFO names the SQL resource, the token is verified", async () => {
    const credential = recordingCredential(() => mint());
    const connection = await login(credential);

    expect(credential.scopes).toEqual(["https://database.windows.net/.default"]);
    expect(server.logins).toEqual([
      expect.objectContaining({
        outcome: "ok",
        library: "adal",
        encryption: "tls-in-prelogin",
        database: "orders",
        userName: "orders-api",
        principal: { oid: identity.principalId, appid: identity.clientId, tid: cloud.tenantId },
      }),
    ]);
    expect(await query(connection, "SELECT 1 AS one")).toEqual([{ one: 1 }]);
  });

  it("answers the documented SELECT subset with the token's principal", async () => {
    const connection = await login();

    const rows = await query(connection, "select 42 as answer, N'it''s' AS [text], -7, NULL AS nothing, SUSER_SNAME() AS login, USER_NAME() user_name, CURRENT_USER, DB_NAME() AS db");

    expect(rows).toEqual([
      { answer: 42, text: "it's", "#2": -7, nothing: null, login: `${identity.clientId}@${cloud.tenantId}`, user_name: "orders-api", "#6": "orders-api", db: "orders" },
    ]);
    const versions = await query(connection, "SELECT @@VERSION AS v; SELECT @@SERVERNAME AS s");
    expect(versions[0]?.["v"]).toContain("not a SQL engine");
    expect(versions[1]).toEqual({ s: "testbed-sql" });
    expect(server.batches.at(-1)).toEqual(expect.objectContaining({ userName: "orders-api", resultSets: 2, errors: [] }));
  });

  it("answers anything else with error 50000 and keeps the connection usable", async () => {
    const connection = await login();

    await expect(query(connection, "SELECT 1 FROM sys.databases")).rejects.toThrow(/not a SQL engine.*Not understood: 'FROM'/);
    await expect(query(connection, "SELECT name")).rejects.toThrow(/Not understood: 'name'/);
    await expect(query(connection, "DROP TABLE orders")).rejects.toThrow(/Not understood: 'DROP'/);
    expect(await query(connection, "SELECT 2 AS two")).toEqual([{ two: 2 }]);
  });

  it("runs execSql (RPC sp_executesql) statements without parameters, and refuses parameters with error 50000", async () => {
    const connection = await login();

    expect(await execSql(connection, "SELECT 1 AS one, USER_NAME() AS who")).toEqual([{ one: 1, who: "orders-api" }]);
    expect(await execSql(connection, "SELECT 'a' AS x; SELECT 'b' AS y")).toEqual([{ x: "a" }, { y: "b" }]);
    expect(server.batches.at(-1)).toEqual(expect.objectContaining({ kind: "rpc", resultSets: 2, errors: [] }));
    await expect(execSql(connection, "SELECT @id AS id", [{ name: "id", value: 7 }])).rejects.toThrow(/does not support query parameters/);
    await expect(execSql(connection, "SELECT * FROM t")).rejects.toThrow(/Not understood: '\*'/);
    expect(await execSql(connection, "SELECT 3 AS three")).toEqual([{ three: 3 }]);
  });

  it("supports TDS 8.0 strict encryption (TLS before PRELOGIN) and the access-token (SECURITYTOKEN) login", async () => {
    const strict = await login(undefined, { encrypt: "strict" });
    expect(await query(strict, "SELECT 1 AS one")).toEqual([{ one: 1 }]);

    const token = await mint();
    const withToken = await connect(server, cloud.ca.certPem, { type: "azure-active-directory-access-token", options: { token } });
    open.push(withToken);
    expect(await query(withToken, "SELECT SUSER_SNAME() AS who")).toEqual([{ who: `${identity.clientId}@${cloud.tenantId}` }]);
    expect(server.logins.map((l) => [l.encryption, l.library, l.outcome])).toEqual([
      ["strict", "adal", "ok"],
      ["tls-in-prelogin", "securitytoken", "ok"],
    ]);
  });

  describe("refuses logins as Azure SQL does: error 18456 for '<token-identified principal>'", () => {
    const failedLogin = /Login failed for user '<token-identified principal>'\./;

    it("a token for another resource", async () => {
      await expect(login(recordingCredential(() => mint({ audience: "https://vault.azure.net" })))).rejects.toThrow(failedLogin);
      expect(server.logins.at(-1)).toEqual(expect.objectContaining({ outcome: "failed", reason: "audience" }));
    });

    it("an expired token (on the clock)", async () => {
      const token = await mint({ lifetimeMs: 60_000 });
      clock.advance(120_000);
      await expect(login(recordingCredential(async () => token))).rejects.toThrow(failedLogin);
      expect(server.logins.at(-1)?.reason).toBe("expired");
    });

    it("a token signed by another issuer", async () => {
      const stranger = await TokenIssuer.create({ clock });
      await expect(login(recordingCredential(() => mint({ issuer: stranger })))).rejects.toThrow(failedLogin);
      expect(server.logins.at(-1)?.reason).toBe("signature");
    });

    it("a token that is not a JWT", async () => {
      await expect(login(recordingCredential(async () => "not-a-token"))).rejects.toThrow(failedLogin);
      expect(server.logins.at(-1)?.reason).toBe("malformed");
    });

    it("a valid token whose principal is no database user", async () => {
      server.removeUser("orders-api");
      await expect(login()).rejects.toThrow(failedLogin);
      expect(server.logins.at(-1)).toEqual(expect.objectContaining({ reason: "not_a_user", principal: expect.objectContaining({ oid: identity.principalId }) }));
    });

    it("an unknown database (error 4060 first)", async () => {
      await expect(login(undefined, { database: "nope" })).rejects.toThrow(failedLogin);
      expect(server.logins.at(-1)).toEqual(expect.objectContaining({ reason: "unknown_database", database: "nope" }));
    });
  });

  it("requires encryption: a client with encrypt: false is told so by tedious itself", async () => {
    await expect(login(undefined, { encrypt: false })).rejects.toThrow(/Server requires encryption/);
    expect(server.logins).toEqual([]);
  });
});
