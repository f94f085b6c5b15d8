import { createServer, type Server, type Socket } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Cluster } from "./helpers/cluster";
import { parseRawAnswer } from "./helpers/raw-http";

const POD = "127.0.23.1";
const OTHER_POD = "127.0.23.2";

/** An upstream that keeps the raw bytes of every request and answers a fixed JSON: what is on the wire. */
class RawUpstream {
  readonly received: string[] = [];
  /** Bytes received after a request head that were not the start of another request head. */
  stray = "";
  answer = 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}';
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();

  constructor() {
    this.#server = createServer((socket) => {
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
      let buffer = "";
      socket.setEncoding("latin1");
      socket.on("data", (d: string) => {
        buffer += d;
        let end: number;
        while ((end = buffer.indexOf("\r\n\r\n")) >= 0) {
          const head = buffer.slice(0, end);
          if (!/^[A-Z]+ \/\S* HTTP\/1\.1$/.test(head.split("\r\n")[0]!)) this.stray += head;
          this.received.push(head);
          buffer = buffer.slice(end + 4);
          const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
          buffer = buffer.slice(length);
          socket.write(this.answer);
        }
        if (buffer !== "" && !/^[A-Z]/.test(buffer)) this.stray += buffer;
      });
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    const address = this.#server.address() as { port: number };
    return `http://127.0.0.1:${address.port}`;
  }

  requestLines(): string[] {
    return this.received.map((r) => r.split("\r\n")[0]!);
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

let c: Cluster;
let upstream: RawUpstream;
const UNLIMITED = { proxyRequestsPerSecondPerPod: 1e6, proxyBurstPerPod: 1e6, proxyRequestsPerSecond: 1e6, proxyBurst: 1e6 };

beforeEach(async () => {
  c = await Cluster.start();
  upstream = new RawUpstream();
});
afterEach(async () => {
  await c.close();
  await upstream.close();
});

async function get(ip: string, target: string, method = "GET", headers = "metadata: true\r\n"): Promise<NonNullable<ReturnType<typeof parseRawAnswer>>> {
  const raw = await c.raw(ip, `${method} ${target} HTTP/1.1\r\nhost: 169.254.169.254\r\n${headers}connection: close\r\ncontent-length: 0\r\n\r\n`);
  const a = parseRawAnswer(raw);
  if (a === undefined) throw new Error(`no answer: ${raw}`);
  return a;
}

describe("the proxy sends the canonical path it classified, byte for byte", () => {
  it("dot segments, escapes and `//` are resolved before classification and the result is what goes upstream", async () => {
    const upstreamUrl = await upstream.start();
    await c.startNmi({ upstreamImds: upstreamUrl, ...UNLIMITED });
    const a = await get(POD, "http://evil.example/x/../metadata//%2e/Instance/%63ompute/x/%2E%2e/.?api-version=2021-02-01&q=%2e%2e/x#frag");
    expect(a.status, a.text).toBe(200);
    expect(a.headers["x-podidentity-nmi"]).toBe("0.1.0");
    expect(upstream.requestLines()).toEqual(["GET /metadata/Instance/compute/?api-version=2021-02-01&q=%2e%2e/x HTTP/1.1"]);
    const headers = upstream.received[0]!.toLowerCase();
    expect(headers).toContain(`host: ${new URL(upstreamUrl).host}`);
    expect(headers).not.toContain("evil.example");
  });

  it("the route table: what is proxied, refused (403), unknown (404) or the wrong method (405 with Allow)", async () => {
    await c.startNmi({ upstreamImds: await upstream.start(), ...UNLIMITED });
    const cases: Array<[string, string, number, string?]> = [
      ["GET", "/metadata/instance?api-version=2021-02-01", 200],
      ["GET", "/metadata/instance/compute/vmId?api-version=2021-02-01&format=text", 200],
      ["GET", "/metadata/scheduledevents?api-version=2020-07-01", 200],
      ["GET", "/metadata/versions", 200],
      ["GET", "/metadata/loadbalancer?api-version=2020-10-01", 200],
      ["GET", "/metadata/instance/compute/userData?api-version=2021-01-01&format=text", 403, "podidentity_forbidden"],
      ["GET", "/metadata/instance/compute/./USERDATA?api-version=2021-01-01", 403, "podidentity_forbidden"],
      ["GET", "/metadata/attested/document?api-version=2020-09-01", 403, "podidentity_forbidden"],
      ["POST", "/metadata/scheduledevents?api-version=2020-07-01", 403, "podidentity_forbidden"],
      ["GET", "/metadata/identity/info?api-version=2018-02-01", 403, "podidentity_forbidden"],
      ["GET", "/metadata/identity/oauth2/token/x/..;/?resource=x", 400, "invalid_request"],
      ["GET", "/metadata;x/identity/oauth2/token?resource=x", 404, "not_found"],
      ["GET", "/metadata/instance;x?api-version=2021-02-01", 404, "not_found"],
      ["GET", "/metadata/instance\\compute?api-version=2021-02-01", 404, "not_found"],
      ["GET", "/metadata/instance%2fcompute?api-version=2021-02-01", 404, "not_found"],
      ["GET", "/metadata/something-new", 404, "not_found"],
      ["GET", "/", 404, "not_found"],
      ["DELETE", "/metadata/instance", 405, "invalid_request"],
      ["PUT", "/metadata/scheduledevents", 405, "invalid_request"],
    ];
    for (const [method, target, status, error] of cases) {
      const a = await get(POD, target, method);
      expect(a.status, `${method} ${target}: ${a.text}`).toBe(status);
      expect(a.headers["x-podidentity-nmi"]).toBe("0.1.0");
      if (error !== undefined) expect(a.body, `${method} ${target}`).toMatchObject({ error, error_description: expect.any(String) });
    }
    expect((await get(POD, "/metadata/scheduledevents", "PUT")).headers["allow"]).toBe("GET, POST");
    expect(upstream.requestLines().map((l) => l.split("?")[0])).toEqual([
      "GET /metadata/instance",
      "GET /metadata/instance/compute/vmId",
      "GET /metadata/scheduledevents",
      "GET /metadata/versions HTTP/1.1",
      "GET /metadata/loadbalancer",
    ]);
    // The 404 mimics IMDS's "API not found" and echoes the canonical path, not the raw one.
    expect((await get(POD, "/x/../nope")).body.error_description).toBe('API not found: Path = "/nope", Method = "GET"');
  });

  it("--allow-imds-routes opens user data, the attested document and scheduled-event acknowledgements", async () => {
    await c.startNmi({ upstreamImds: await upstream.start(), ...UNLIMITED, allowImdsRoutes: ["user-data", "attested-document", "scheduled-events-ack"] });
    expect((await get(POD, "/metadata/instance/compute/userData?api-version=2021-01-01&format=text")).status).toBe(200);
    expect((await get(POD, "/metadata/attested/document?api-version=2020-09-01")).status).toBe(200);
    expect((await get(POD, "/metadata/scheduledevents?api-version=2020-07-01", "POST")).status).toBe(200);
    expect(upstream.requestLines()).toEqual([
      "GET /metadata/instance/compute/userData?api-version=2021-01-01&format=text HTTP/1.1",
      "GET /metadata/attested/document?api-version=2020-09-01 HTTP/1.1",
      "POST /metadata/scheduledevents?api-version=2020-07-01 HTTP/1.1",
    ]);
  });

  it("--block-instance-metadata applies to the canonical path", async () => {
    await c.startNmi({ upstreamImds: await upstream.start(), ...UNLIMITED, blockInstanceMetadata: true });
    for (const target of ["/metadata/./instance", "/x/../METADATA/%69nstance/compute", "//metadata//instance/"]) {
      const a = await get(POD, `${target}?api-version=2021-02-01`);
      expect(a.status, target).toBe(403);
      expect(a.body.error).toBe("podidentity_forbidden");
    }
    expect(upstream.received).toHaveLength(0);
  });
});

describe("what the proxy forwards", () => {
  it("only IMDS's request headers, no body on a GET (it would be read as another request upstream), a POST's body with its length", async () => {
    await c.startNmi({ upstreamImds: await upstream.start(), ...UNLIMITED, allowImdsRoutes: ["scheduled-events-ack"] });
    const smuggled = "GET /metadata/identity/oauth2/token?resource=x&client_id=other HTTP/1.1\r\nhost: a\r\nmetadata: true\r\n\r\n";
    const get = await c.raw(POD, `GET /metadata/versions HTTP/1.1\r\nhost: a\r\nmetadata: true\r\nx-custom: 1\r\ncookie: a=b\r\ncontent-length: ${smuggled.length}\r\nconnection: close\r\n\r\n${smuggled}`);
    expect(parseRawAnswer(get)?.status).toBe(200);
    const post = await c.raw(POD, 'POST /metadata/scheduledevents?api-version=2020-07-01 HTTP/1.1\r\nhost: a\r\nmetadata: true\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n11\r\n{"StartRequests":\r\n3\r\n[]}\r\n0\r\n\r\n');
    expect(parseRawAnswer(post)?.status).toBe(200);
    expect(upstream.requestLines()).toEqual(["GET /metadata/versions HTTP/1.1", "POST /metadata/scheduledevents?api-version=2020-07-01 HTTP/1.1"]);
    expect(upstream.stray).toBe("");
    const getHead = upstream.received[0]!.toLowerCase();
    expect(getHead).toContain("metadata: true");
    expect(getHead).not.toContain("x-custom");
    expect(getHead).not.toContain("cookie");
    expect(getHead).not.toContain("content-length");
    expect(upstream.received[1]!.toLowerCase()).toContain("content-length: 20");
  });

  it("an upstream error without a JSON body keeps its status and gets an IMDS-shaped body", async () => {
    upstream.answer = "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
    await c.startNmi({ upstreamImds: await upstream.start(), ...UNLIMITED });
    const a = await get(POD, "/metadata/versions");
    expect(a.status).toBe(400);
    expect(a.headers["x-podidentity-nmi"]).toBe("0.1.0");
    expect(a.body).toEqual({ error: "upstream_error", error_description: "the node's IMDS answered 400 without a JSON error body" });
  });
});

describe("proxied requests are rate-limited per pod and node-wide", () => {
  it("a pod over its burst gets 429 + Retry-After without reaching IMDS; the node ceiling holds across pods", async () => {
    await c.startNmi({ upstreamImds: await upstream.start(), proxyRequestsPerSecondPerPod: 0.001, proxyBurstPerPod: 2, proxyRequestsPerSecond: 0.001, proxyBurst: 3 });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await get(POD, "/metadata/instance?api-version=2021-02-01")).status);
    expect(statuses).toEqual([200, 200, 429]);
    const limited = await get(POD, "/metadata/versions");
    expect(limited.status).toBe(429);
    expect(limited.body).toMatchObject({ error: "podidentity_rate_limited", error_description: expect.stringContaining("this pod") });
    expect(Number(limited.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect((await get(OTHER_POD, "/metadata/versions")).status).toBe(200);
    const node = await get(OTHER_POD, "/metadata/versions");
    expect(node.status).toBe(429);
    expect(node.body.error_description).toContain("all pods on this node");
    expect(upstream.received).toHaveLength(3);
  });

  it("the defaults stay under IMDS's 5 requests/s per VM", async () => {
    await c.startNmi({ upstreamImds: await upstream.start() });
    const config = c.nmi!.config;
    expect(config.proxyBurst + config.proxyRequestsPerSecond).toBeLessThanOrEqual(5);
    expect(config.proxyBurstPerPod).toBeLessThanOrEqual(config.proxyBurst);
    const answers = (await Promise.all(Array.from({ length: 8 }, (_, i) => get(`127.0.23.${10 + i}`, "/metadata/versions")))).map((a) => a.status);
    // However many pods ask at once, at most the node's burst (plus what refilled meanwhile) reaches IMDS.
    expect(upstream.received.length).toBe(answers.filter((s) => s === 200).length);
    expect(answers.filter((s) => s === 429).length).toBeGreaterThan(0);
  });
});
