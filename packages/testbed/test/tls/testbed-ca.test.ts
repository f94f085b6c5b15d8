import { readFile, mkdtemp, rm } from "node:fs/promises";
import { createServer, request, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { TestbedCa } from "../../src/index";

let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

async function serve(leaf: { certPem: string; keyPem: string }): Promise<number> {
  server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (_req, res) => res.end("hello"));
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return (server!.address() as AddressInfo).port;
}

function get(port: number, options: { ca?: string; servername?: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, path: "/", ...options, agent: false },
      (res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => (body += chunk.toString()));
        res.on("end", () => resolve(body));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("TestbedCa", () => {
  it("issues a leaf that a client trusting only the CA accepts", async () => {
    const ca = await TestbedCa.create();
    const port = await serve(await ca.issue({ ipAddresses: ["127.0.0.1"], dnsNames: ["localhost"] }));
    await expect(get(port, { ca: ca.certPem })).resolves.toBe("hello");
  });

  it("is rejected by a client that does not trust the CA", async () => {
    const ca = await TestbedCa.create();
    const port = await serve(await ca.issue({ ipAddresses: ["127.0.0.1"] }));
    await expect(get(port, {})).rejects.toMatchObject({ code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" });
    const otherCa = await TestbedCa.create();
    await expect(get(port, { ca: otherCa.certPem })).rejects.toMatchObject({ code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" });
  });

  it("checks host names: a leaf for a real Azure name serves that name only", async () => {
    const ca = await TestbedCa.create();
    const port = await serve(await ca.issue({ dnsNames: ["management.azure.com"] }));
    await expect(get(port, { ca: ca.certPem })).rejects.toMatchObject({ code: "ERR_TLS_CERT_ALTNAME_INVALID" });
    await expect(get(port, { ca: ca.certPem, servername: "management.azure.com" })).resolves.toBe("hello");
  });

  it("issues wildcard leaves for the real Azure host names, server-auth only", async () => {
    const ca = await TestbedCa.create({ commonName: "my CA" });
    const leaf = await ca.issue({ dnsNames: ["*.vault.azure.net", "login.microsoftonline.com"] });
    const cert = new X509Certificate(leaf.certPem);
    expect(cert.checkHost("myvault.vault.azure.net")).toBe("*.vault.azure.net");
    expect(cert.checkHost("a.b.vault.azure.net")).toBeUndefined();
    expect(cert.checkHost("login.microsoftonline.com")).toBe("login.microsoftonline.com");
    expect(cert.checkIssued(new X509Certificate(ca.certPem))).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"]);
    expect(new X509Certificate(ca.certPem).subject).toBe("CN=my CA");
  });

  it("refuses leaves without names or with malformed ones", async () => {
    const ca = await TestbedCa.create();
    await expect(ca.issue({})).rejects.toThrow(TypeError);
    await expect(ca.issue({ ipAddresses: ["not-an-ip"] })).rejects.toThrow(/not an IP address/);
    await expect(ca.issue({ dnsNames: ["bad name"] })).rejects.toThrow(/not a DNS name/);
  });

  it("writes ca.pem", async () => {
    const ca = await TestbedCa.create();
    const dir = await mkdtemp(join(tmpdir(), "testbed-ca-"));
    try {
      const path = await ca.writeCaFile(join(dir, "nested"));
      expect(path).toBe(join(dir, "nested", "ca.pem"));
      expect(await readFile(path, "utf8")).toBe(ca.certPem);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
