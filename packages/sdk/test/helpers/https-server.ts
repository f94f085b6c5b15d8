import { createServer } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Server } from "node:https";
import type { AddressInfo } from "node:net";
import { generate } from "selfsigned";

export interface TestCertificate {
  cert: string;
  key: string;
}

let cached: Promise<TestCertificate> | undefined;

/** A throwaway self-signed certificate for 127.0.0.1, trusted only by the clients a test hands it to. */
export function testCertificate(): Promise<TestCertificate> {
  cached ??= generate([{ name: "commonName", value: "127.0.0.1" }], {
    keyType: "ec",
    algorithm: "sha256",
    extensions: [
      { name: "basicConstraints", cA: true },
      { name: "subjectAltName", altNames: [{ type: 7, ip: "127.0.0.1" }, { type: 2, value: "localhost" }] },
    ],
  }).then((pems) => ({ cert: pems.cert, key: pems.private }));
  return cached;
}

export interface HttpsTestServer {
  url: string;
  cert: string;
  close: () => Promise<void>;
}

/** Starts an HTTPS server on 127.0.0.1 with the test certificate. */
export async function startHttpsServer(
  handler: (req: IncomingMessage, res: ServerResponse, body: string) => void,
): Promise<HttpsTestServer> {
  const { cert, key } = await testCertificate();
  const server: Server = createServer({ cert, key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => handler(req, res, Buffer.concat(chunks).toString("utf8")));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    cert,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}
