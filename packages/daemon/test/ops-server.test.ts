import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { OpsServer } from "../src/index";

/** Sends raw bytes (no client that normalises the path) and returns everything the server wrote until it closed. */
function raw(url: string, bytes: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let text = "";
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => (text += chunk));
    socket.on("error", reject);
    socket.on("close", () => resolve(text));
    socket.write(bytes);
  });
}

const get = (url: string, path: string): Promise<string> => raw(url, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);

describe("OpsServer", () => {
  let server: OpsServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it("serves exactly its routes, with the daemon's headers; a throwing route is a 500 with its message", async () => {
    server = new OpsServer(
      {
        "/healthz": () => ({ status: 200, body: "ok\n" }),
        "/metrics": async () => ({ status: 200, contentType: "text/plain; version=0.0.4", body: "up 1\n" }),
        "/broken": () => {
          throw new Error("registry failed");
        },
      },
      { headers: { "x-daemon-version": "1.2.3" } },
    );
    await server.listen(0, "127.0.0.1");
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);

    const ok = await get(server.url, "/healthz?verbose");
    expect(ok).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(ok).toMatch(/\r\nx-daemon-version: 1\.2\.3\r\n/i);
    expect(ok).toMatch(/\r\ncontent-type: text\/plain; charset=utf-8\r\n/i);
    expect(ok.endsWith("\r\n\r\nok\n")).toBe(true);

    expect(await get(server.url, "/metrics")).toMatch(/content-type: text\/plain; version=0\.0\.4\r\n[\s\S]*\r\n\r\nup 1\n$/i);
    expect(await get(server.url, "/broken")).toMatch(/^HTTP\/1\.1 500 [\s\S]*\r\n\r\nregistry failed\n$/);
    // Every other spelling is a 404, including names every object has.
    for (const path of ["/", "/healthz/", "//healthz", "/HEALTHZ", "/debug/pprof/", "/__proto__", "/constructor", "/toString", "*"]) {
      expect(await get(server.url, path), path).toMatch(/^HTTP\/1\.1 404 [\s\S]*\r\n\r\nnot found\n$/);
    }
  });

  it("cuts off a client that never finishes its request head (408), so it cannot hold a connection", async () => {
    server = new OpsServer({ "/healthz": () => ({ status: 200, body: "ok\n" }) }, { headersTimeoutMs: 200, requestTimeoutMs: 300 });
    await server.listen(0, "127.0.0.1");
    const answer = await raw(server.url, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
  });

  it("close() ends open keep-alive connections and is idempotent; a port in use is an error from listen()", async () => {
    server = new OpsServer({ "/healthz": () => ({ status: 200, body: "ok\n" }) });
    await server.listen(0, "127.0.0.1");
    const second = new OpsServer({});
    await expect(second.listen(server.port, "127.0.0.1")).rejects.toMatchObject({ code: "EADDRINUSE" });
    // A keep-alive client that got its answer and stays connected.
    const socket = connect(server.port, "127.0.0.1");
    socket.setEncoding("latin1");
    let text = "";
    const answered = new Promise<void>((resolve) => socket.on("data", (chunk: string) => (text += chunk).endsWith("ok\n") && resolve()));
    const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    await answered;
    expect(text).toMatch(/^HTTP\/1\.1 200 [\s\S]*keep-alive/i);
    await server.close();
    await closed;
    await server.close();
    server = undefined;
  });
});
