// The floor: a bare node:http server answering a fixed token JSON, in its own process like NMI.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

const now = Math.floor(Date.now() / 1000);
const body = JSON.stringify({
  access_token: "x".repeat(1200),
  refresh_token: "",
  expires_in: "86399",
  expires_on: String(now + 86399),
  not_before: String(now),
  resource: "https://vault.azure.net",
  token_type: "Bearer",
  client_id: "00000000-0000-0000-0000-000000000000",
});
const server = createServer((_req, res) => {
  res.writeHead(200, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(body) });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })}\n`);
});
process.on("SIGTERM", () => process.exit(0));
