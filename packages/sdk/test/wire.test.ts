import { Agent, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { PodIdentityCredential } from "../src/pod-identity-credential";
import { startHarness } from "./helpers/credential";
import type { Harness } from "./helpers/credential";

describe("PodIdentityCredential wire protocol", () => {
  let h: Harness;
  beforeEach(async () => {
    h = await startHarness();
  });
  afterEach(async () => {
    await h.close();
  });

  it("sends GET /metadata/identity/oauth2/token with api-version, resource (/.default stripped) and Metadata: true", async () => {
    const token = await h.credential().getToken("https://vault.azure.net/.default");
    expect(h.server.requests).toHaveLength(1);
    const request = h.server.requests[0]!;
    expect(request.method).toBe("GET");
    expect(request.path).toBe("/metadata/identity/oauth2/token");
    expect([...request.query.entries()]).toEqual([
      ["api-version", "2018-02-01"],
      ["resource", "https://vault.azure.net"],
    ]);
    expect(request.headers.metadata).toBe("true");
    expect(token.token).toBe("token-1");
    expect(token.tokenType).toBe("Bearer");
    expect(token.expiresOnTimestamp).toBe(Math.floor(h.clock.now() / 1000) * 1000 + 3_600_000);
    expect(token.refreshAfterTimestamp).toBeGreaterThan(h.clock.now());
    expect(token.refreshAfterTimestamp).toBeLessThan(token.expiresOnTimestamp);
  });

  it.each([
    [{ clientId: "11111111-aaaa" }, "client_id", "11111111-aaaa"],
    [{ resourceId: "/subscriptions/s/resourcegroups/r/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i" }, "msi_res_id", "/subscriptions/s/resourcegroups/r/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i"],
    [{ objectId: "22222222-bbbb" }, "object_id", "22222222-bbbb"],
  ])("selects the identity with %o as %s", async (options, param, value) => {
    await h.credential(options).getToken("https://storage.azure.com/.default");
    expect(h.server.requests[0]!.query.get(param)).toBe(value);
    expect(["client_id", "msi_res_id", "object_id"].filter((p) => h.server.requests[0]!.query.has(p))).toEqual([param]);
  });

  it("uses env AZURE_CLIENT_ID only when no selector option is given", async () => {
    vi.stubEnv("AZURE_CLIENT_ID", "from-env");
    await h.credential().getToken("https://a/.default");
    await h.credential({ objectId: "obj" }).getToken("https://a/.default");
    expect(h.server.requests[0]!.query.get("client_id")).toBe("from-env");
    expect(h.server.requests[1]!.query.get("client_id")).toBeNull();
    expect(h.server.requests[1]!.query.get("object_id")).toBe("obj");
  });

  it("reads the endpoint from env AZURE_POD_IDENTITY_AUTHORITY_HOST once, at construction", async () => {
    vi.stubEnv("AZURE_POD_IDENTITY_AUTHORITY_HOST", h.server.url);
    const credential = new PodIdentityCredential({ now: h.clock.now, sleep: h.clock.sleep });
    vi.stubEnv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9");
    await credential.getToken("https://a/.default");
    expect(h.server.requests).toHaveLength(1);
    await credential.close();
  });

  it("ignores tenantId: the identity decides the tenant", async () => {
    const credential = h.credential();
    const first = await credential.getToken("https://a/.default", { tenantId: "other-tenant" });
    expect(h.server.requests[0]!.query.has("tenant_id")).toBe(false);
    expect(await credential.getToken("https://a/.default")).toBe(first);
  });

  it("sends through an injected node:http Agent, and leaves it usable on close()", async () => {
    const agent = new Agent({ keepAlive: true });
    const sockets: string[] = [];
    agent.on("free", (socket) => sockets.push(`${socket.remoteAddress}:${socket.remotePort}`));
    const credential = h.credential({ agent });
    await credential.getToken("https://a/.default");
    await credential.close();
    expect(sockets).toEqual([`127.0.0.1:${new URL(h.server.url).port}`]);
    expect(h.server.requests[0]!.path).toBe("/metadata/identity/oauth2/token");
    // Not destroyed by close(): the caller owns it, and its kept-alive socket is still there for reuse.
    expect(Object.values(agent.freeSockets).flat()).toHaveLength(1);
    agent.destroy();
  });

  it("never goes through an HTTP proxy, even when HTTP_PROXY and HTTPS_PROXY are set", async () => {
    const proxied: string[] = [];
    const proxy = createServer((req, res) => {
      proxied.push(req.url ?? "");
      res.writeHead(502).end();
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    vi.stubEnv("HTTP_PROXY", proxyUrl);
    vi.stubEnv("HTTPS_PROXY", proxyUrl);
    vi.stubEnv("http_proxy", proxyUrl);
    vi.stubEnv("NO_PROXY", "");
    try {
      const token = await h.credential().getToken("https://a/.default");
      expect(token.token).toBe("token-1");
      expect(proxied).toEqual([]);
      expect(h.server.requests).toHaveLength(1);
    } finally {
      proxy.closeAllConnections();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });
});
