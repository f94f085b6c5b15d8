// The CONNECT proxy behind `podidentity-testbed up`: real host names reach the emulators through it (TLS verified
// against the testbed CA under those names), everything else is refused, and every connection, wait and size is bounded.
import { once } from "node:events";
import { request } from "node:http";
import { createServer, connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AzureHostProxy, AzureTestbed } from "../../src/index";

interface ConnectAnswer {
  status: number;
  body: string;
  socket: Socket;
}

/** Sends `CONNECT authority` to the proxy; for a 200 the socket is the open tunnel, otherwise the body is read. */
async function connectThrough(proxyUrl: string, authority: string, headers: Record<string, string> = {}): Promise<ConnectAnswer> {
  const url = new URL(proxyUrl);
  const req = request({ host: url.hostname, port: url.port, method: "CONNECT", path: authority, headers: { host: authority, ...headers } });
  req.end();
  const [res, socket, head] = (await once(req, "connect")) as [{ statusCode: number }, Socket, Buffer];
  if (res.statusCode === 200) return { status: 200, body: "", socket };
  let body = head.toString("utf8");
  socket.on("data", (d: Buffer) => (body += d.toString("utf8")));
  await once(socket, "close");
  return { status: res.statusCode, body, socket };
}

/** Raw bytes to the proxy, the whole answer back (for requests node:http would not send). */
async function raw(proxyUrl: string, bytes: string): Promise<string> {
  const url = new URL(proxyUrl);
  const socket = netConnect({ host: url.hostname, port: Number(url.port) });
  let answer = "";
  socket.on("data", (d: Buffer) => (answer += d.toString("utf8")));
  socket.on("error", () => undefined);
  socket.write(bytes);
  await once(socket, "close");
  return answer;
}

describe("AzureHostProxy with the testbed's emulators", () => {
  let testbed: AzureTestbed;
  let proxyUrl: string;

  beforeAll(async () => {
    testbed = await AzureTestbed.start({ nodeCount: 1, proxyPort: 0 });
    proxyUrl = testbed.proxy!.url;
  });
  afterAll(async () => {
    await testbed.close();
  });

  it("maps the vault's real name to the Key Vault emulator, whose certificate is valid for that name", async () => {
    const { status, socket } = await connectThrough(proxyUrl, "testbed-kv.vault.azure.net:443");
    expect(status).toBe(200);
    const tls = tlsConnect({ socket, servername: "testbed-kv.vault.azure.net", ca: testbed.cloud.ca.certPem });
    await once(tls, "secureConnect");
    tls.write("GET /secrets/anything?api-version=7.4 HTTP/1.1\r\nHost: testbed-kv.vault.azure.net\r\nConnection: close\r\n\r\n");
    let answer = "";
    tls.on("data", (d: Buffer) => (answer += d.toString("utf8")));
    await once(tls, "close");
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(answer).toContain('resource="https://vault.azure.net"');
    expect(testbed.keyVault.calls.at(-1)).toMatchObject({ method: "GET", status: 401 });
    expect(testbed.proxy!.decisions).toContainEqual({ authority: "testbed-kv.vault.azure.net:443", status: 200 });
  });

  it("maps management.azure.com and login.microsoftonline.com, and lists exactly what it maps", async () => {
    expect(testbed.proxy!.hostNames).toEqual(["login.microsoftonline.com", "management.azure.com", "testbed-kv.vault.azure.net"]);
    for (const name of ["management.azure.com", "login.microsoftonline.com"]) {
      const { status, socket } = await connectThrough(proxyUrl, `${name}:443`);
      expect(status).toBe(200);
      const tls = tlsConnect({ socket, servername: name, ca: testbed.cloud.ca.certPem });
      await once(tls, "secureConnect");
      expect(tls.authorized).toBe(true);
      tls.destroy();
    }
  });

  it("refuses every other host with 403 and a message naming what it maps; it never forwards to the internet", async () => {
    for (const authority of ["example.com:443", "other-vault.vault.azure.net:443", "management.azure.com:80", "169.254.169.254:80"]) {
      const { status, body } = await connectThrough(proxyUrl, authority);
      expect(status, authority).toBe(403);
      expect(JSON.parse(body)).toEqual({
        error: "podidentity_testbed_proxy_refused",
        error_description: `the testbed proxy does not forward ${authority}: it only reaches the emulators, as login.microsoftonline.com:443, management.azure.com:443, testbed-kv.vault.azure.net:443`,
      });
      expect(testbed.proxy!.decisions).toContainEqual({ authority, status: 403 });
    }
  });

  it("refuses plain-HTTP proxying (absolute-form requests) with 403, pointing at NO_PROXY", async () => {
    const answer = await raw(proxyUrl, "GET http://169.254.169.254/metadata/instance HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n");
    expect(answer).toMatch(/^HTTP\/1\.1 403 /);
    expect(answer).toContain("only tunnels HTTPS (CONNECT)");
    expect(answer).toContain("NO_PROXY");
  });

  it("answers a malformed CONNECT target with 400 and oversized headers with 431", async () => {
    expect(await raw(proxyUrl, "CONNECT no-port HTTP/1.1\r\nHost: no-port\r\n\r\n")).toMatch(/^HTTP\/1\.1 400 [\s\S]*CONNECT needs host:port/);
    const answer = await raw(proxyUrl, `CONNECT management.azure.com:443 HTTP/1.1\r\nHost: management.azure.com\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 431 /);
  });
});

describe("AzureHostProxy bounds", () => {
  const started: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((s) => s.close()));
  });

  async function echoServer(): Promise<{ port: number; close(): Promise<void> }> {
    const sockets = new Set<Socket>();
    const server = createServer((s) => {
      sockets.add(s);
      s.pipe(s);
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const handle = {
      port: (server.address() as { port: number }).port,
      close: async (): Promise<void> => {
        for (const s of sockets) s.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
    started.push(handle);
    return handle;
  }

  it("validates its options, naming the option", () => {
    expect(() => new AzureHostProxy({ maxConnections: 0 })).toThrow("AzureHostProxy: option maxConnections must be a positive integer, got 0");
    expect(() => new AzureHostProxy({ port: 70_000 })).toThrow("AzureHostProxy: option port must be 0-65535, got 70000");
    expect(() => new AzureHostProxy().route("not a host", { host: "127.0.0.1", port: 1 })).toThrow('AzureHostProxy.route: "not a host" is not a host name');
  });

  it("answers 502 when the emulator behind a name is gone", async () => {
    const gone = await echoServer();
    await gone.close();
    started.length = 0;
    const proxy = await new AzureHostProxy().route("management.azure.com", { host: "127.0.0.1", port: gone.port }).start();
    started.push(proxy);
    const { status, body } = await connectThrough(proxy.url, "management.azure.com:443");
    expect(status).toBe(502);
    expect(JSON.parse(body).error_description).toContain("is the testbed still running?");
  });

  it("drops connections beyond maxConnections and closes idle tunnels", async () => {
    const echo = await echoServer();
    const proxy = await new AzureHostProxy({ maxConnections: 2, tunnelIdleTimeoutMs: 200 }).route("management.azure.com", { host: "127.0.0.1", port: echo.port }).start();
    started.push(proxy);
    const first = await connectThrough(proxy.url, "management.azure.com:443");
    const second = await connectThrough(proxy.url, "management.azure.com:443");
    expect([first.status, second.status]).toEqual([200, 200]);
    // the tunnel carries bytes both ways
    first.socket.write("ping");
    const [echoed] = (await once(first.socket, "data")) as [Buffer];
    expect(echoed.toString()).toBe("ping");

    const third = netConnect({ host: "127.0.0.1", port: Number(new URL(proxy.url).port) });
    let answered = "";
    third.on("data", (d: Buffer) => (answered += d.toString()));
    third.on("error", () => undefined);
    third.write("CONNECT management.azure.com:443 HTTP/1.1\r\nHost: management.azure.com\r\n\r\n");
    await once(third, "close");
    expect(answered).toBe("");
    expect(proxy.decisions.filter((d) => d.status === 200)).toHaveLength(2);

    // no traffic: both tunnels are closed by the proxy
    await Promise.all([once(first.socket, "close"), once(second.socket, "close")]);
  });
});
