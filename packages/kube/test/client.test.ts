import type { KubeApiServer } from "@podidentity/testbed";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KubeApiError, type KubeClient, type KubeObject } from "../src/index";
import { clientFor, configMap, rawServer, startKube } from "./helpers/cluster";

let kube: KubeApiServer;
const clients: KubeClient[] = [];
const closers: Array<() => Promise<void>> = [];

beforeEach(async () => {
  kube = await startKube();
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  for (const close of closers.splice(0)) await close();
  await kube.close();
});

function client(...args: Parameters<typeof clientFor>): KubeClient {
  const c = clientFor(...args);
  clients.push(c);
  return c;
}

const CONFIGMAPS = "/api/v1/namespaces/default/configmaps";

async function failure(promise: Promise<unknown>): Promise<KubeApiError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(KubeApiError);
  return error as KubeApiError;
}

describe("KubeClient", () => {
  it("creates, reads, lists, updates, merge- and JSON-patches and deletes, as the user its token maps to", async () => {
    const c = client(kube.url);
    const created = await c.create<KubeObject>(CONFIGMAPS, configMap("one", { a: "1" }));
    expect(created.metadata?.uid).toBeTruthy();
    expect((await c.get<KubeObject>(`${CONFIGMAPS}/one`))["data"]).toEqual({ a: "1" });
    const updated = await c.update<KubeObject>(`${CONFIGMAPS}/one`, { ...created, data: { a: "2" } });
    expect(updated["data"]).toEqual({ a: "2" });
    expect((await c.patch<KubeObject>(`${CONFIGMAPS}/one`, { data: { b: "3" } }, "merge"))["data"]).toEqual({ a: "2", b: "3" });
    expect((await c.patch<KubeObject>(`${CONFIGMAPS}/one`, [{ op: "remove", path: "/data/a" }], "json"))["data"]).toEqual({ b: "3" });
    const list = await c.list<KubeObject>(CONFIGMAPS, { query: { labelSelector: undefined } });
    expect(list.items.map((o) => o.metadata?.name)).toEqual(["one"]);
    expect(list.metadata?.resourceVersion).toBeTruthy();
    await c.delete(`${CONFIGMAPS}/one`);
    expect(kube.getObject("configmaps", "default", "one")).toBeUndefined();
    expect(new Set(kube.requests.map((r) => r.user))).toEqual(new Set(["tester"]));
    expect(kube.requests.map((r) => r.verb)).toEqual(["create", "get", "update", "patch", "patch", "list", "delete"]);
  });

  it("turns refusals into one KubeApiError with status, reason, parsed Status body, method and path", async () => {
    const c = client(kube.url);
    const notFound = await failure(c.get(`${CONFIGMAPS}/nope`));
    expect([notFound.status, notFound.reason, notFound.method, notFound.path, notFound.isNotFound]).toEqual([404, "NotFound", "GET", `${CONFIGMAPS}/nope`, true]);
    expect(notFound.body).toMatchObject({ kind: "Status", code: 404 });
    expect(notFound.code).toBe("KUBE_API_ERROR");

    const created = await c.create<KubeObject>(CONFIGMAPS, configMap("x"));
    await c.patch(`${CONFIGMAPS}/x`, { data: { moved: "on" } });
    const conflict = await failure(c.update(`${CONFIGMAPS}/x`, created));
    expect([conflict.status, conflict.isConflict, conflict.method]).toEqual([409, true, "PUT"]);

    kube.failNext({ verb: "list", code: 403, reason: "Forbidden", message: "nope" });
    const forbidden = await failure(c.list(CONFIGMAPS));
    expect([forbidden.isForbidden, forbidden.message]).toEqual([true, `GET ${CONFIGMAPS}: 403 Forbidden: nope`]);
  });

  it("sends extra headers (kubectl's Table form) but always its own authorization", async () => {
    kube.seed(configMap("t"));
    const table = await client(kube.url).request<{ kind: string; rows: unknown[] }>("GET", CONFIGMAPS, {
      headers: { accept: "application/json;as=Table;v=v1;g=meta.k8s.io", authorization: "Bearer forged" },
    });
    expect([table.kind, table.rows.length]).toEqual(["Table", 1]);
    expect(kube.requests.at(-1)?.user).toBe("tester");
  });

  it("reports a wrong token as 401 without the token in the error", async () => {
    const error = await failure(client(kube.url, { token: "s3cret-wrong-token" }).list(CONFIGMAPS));
    expect(error.status).toBe(401);
    expect(`${error.message} ${JSON.stringify(error.body)}`).not.toContain("s3cret-wrong-token");
  });

  it("keeps a non-JSON error answer as text", async () => {
    const raw = await rawServer((_req, res) => res.writeHead(502, { "content-type": "text/html" }).end("<html>bad gateway</html>"));
    closers.push(raw.close);
    const error = await failure(client(raw.url).get("/api/v1/namespaces"));
    expect([error.status, error.reason, error.body]).toEqual([502, "502", "<html>bad gateway</html>"]);
  });

  it("fails answers above maxResponseBytes instead of buffering them", async () => {
    for (let n = 0; n < 5; n++) kube.seed(configMap(`big-${n}`, { v: "x".repeat(2_000) }));
    const error = await failure(client(kube.url, { token: "test-token", maxResponseBytes: 4_096 }).list(CONFIGMAPS));
    expect([error.status, error.reason]).toEqual([0, "ResponseTooLarge"]);
  });

  it("gives up on a server that never answers after timeoutMs (reason Timeout) and on a closed port (Unreachable)", async () => {
    const raw = await rawServer(() => undefined);
    closers.push(raw.close);
    const timeout = await failure(client(raw.url, { token: "t", timeoutMs: 50 }).get("/api/v1/namespaces"));
    expect([timeout.status, timeout.reason]).toEqual([0, "Timeout"]);

    const port = kube.port;
    await kube.close();
    const unreachable = await failure(client(`http://127.0.0.1:${port}`).get("/api/v1/namespaces"));
    expect([unreachable.status, unreachable.reason]).toEqual([0, "Unreachable"]);
    expect(unreachable.message).toContain("ECONNREFUSED");
    await kube.start();
  });

  it("rejects with the caller's reason when the caller aborts", async () => {
    const raw = await rawServer(() => undefined);
    closers.push(raw.close);
    const abort = new AbortController();
    const pending = client(raw.url).get("/api/v1/namespaces", { signal: abort.signal }).catch((e: unknown) => e);
    await new Promise<void>((resolve) => raw.server.once("request", () => resolve()));
    abort.abort(new Error("shutting down"));
    expect(await pending).toEqual(new Error("shutting down"));
  });
});
