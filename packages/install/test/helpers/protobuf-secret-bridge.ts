import { request as httpsRequest } from "node:https";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import type { TestbedCa } from "@podidentity/testbed";

/**
 * Helm stores its releases in Secrets through client-go's typed client, which writes them as Kubernetes protobuf
 * (`application/vnd.kubernetes.protobuf`); the testbed's API emulator reads JSON only and answers 415. This bridge
 * sits on loopback between helm and the emulator and re-encodes exactly those bodies — core/v1 Secret creates and
 * updates — as JSON; every other request passes through byte for byte (so any other protobuf body still gets the
 * emulator's 415 and fails the test). Delete it once the emulator reads protobuf Secrets itself.
 */

const PROTOBUF = "application/vnd.kubernetes.protobuf";
const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]); // "k8s\0"
const SECRET_PATH = /^\/api\/v1\/namespaces\/[^/]+\/secrets(\/[^/?]+)?(\?.*)?$/;
const MAX_BODY_BYTES = 4 * 1024 * 1024;

type Fields = Map<number, (Buffer | number)[]>;

/** Splits one protobuf message into its fields (varints as numbers, length-delimited as buffers). */
function fields(buf: Buffer): Fields {
  const out: Fields = new Map();
  let i = 0;
  const varint = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (i >= buf.length) throw new Error("protobuf: truncated varint");
      const b = buf[i++]!;
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 63) throw new Error("protobuf: varint too long");
    }
  };
  while (i < buf.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key % 8;
    let value: Buffer | number;
    if (wire === 0) value = varint();
    else if (wire === 2) {
      const len = varint();
      if (i + len > buf.length) throw new Error("protobuf: truncated field");
      value = buf.subarray(i, i + len);
      i += len;
    } else if (wire === 1) {
      value = buf.subarray(i, i + 8);
      i += 8;
    } else if (wire === 5) {
      value = buf.subarray(i, i + 4);
      i += 4;
    } else throw new Error(`protobuf: unsupported wire type ${wire}`);
    out.set(field, [...(out.get(field) ?? []), value]);
  }
  return out;
}

const text = (f: Fields, n: number): string | undefined => {
  const v = f.get(n)?.[0];
  return Buffer.isBuffer(v) ? v.toString("utf8") : undefined;
};
function map(f: Fields, n: number, value: (b: Buffer) => string): Record<string, string> | undefined {
  const entries = f.get(n);
  if (entries === undefined) return undefined;
  return Object.fromEntries(
    entries.map((e) => {
      const kv = fields(e as Buffer);
      return [text(kv, 1) ?? "", value((kv.get(2)?.[0] as Buffer | undefined) ?? Buffer.alloc(0))];
    }),
  );
}

/** A core/v1 Secret in Kubernetes' protobuf envelope → the JSON object the API takes. */
export function secretFromProtobuf(body: Buffer): Record<string, unknown> {
  if (!body.subarray(0, 4).equals(MAGIC)) throw new Error("protobuf: missing the k8s envelope");
  const unknown = fields(body.subarray(4));
  const raw = unknown.get(2)?.[0];
  if (!Buffer.isBuffer(raw)) throw new Error("protobuf: envelope without an object");
  const secret = fields(raw);
  const metaBuf = secret.get(1)?.[0];
  const meta = Buffer.isBuffer(metaBuf) ? fields(metaBuf) : new Map();
  const metadata = Object.fromEntries(
    Object.entries({
      name: text(meta, 1),
      generateName: text(meta, 2),
      namespace: text(meta, 3),
      resourceVersion: text(meta, 6),
      labels: map(meta, 11, (b) => b.toString("utf8")),
      annotations: map(meta, 12, (b) => b.toString("utf8")),
    }).filter(([, v]) => v !== undefined && v !== ""),
  );
  const immutable = secret.get(5)?.[0];
  return Object.fromEntries(
    Object.entries({
      apiVersion: "v1",
      kind: "Secret",
      metadata,
      data: map(secret, 2, (b) => b.toString("base64")),
      type: text(secret, 3),
      stringData: map(secret, 4, (b) => b.toString("utf8")),
      immutable: immutable === undefined ? undefined : immutable === 1,
    }).filter(([, v]) => v !== undefined),
  );
}

/** The DeleteOptions of a delete, in the protobuf envelope → JSON; fields other than the three below are refused. */
export function deleteOptionsFromProtobuf(body: Buffer): Record<string, unknown> {
  if (!body.subarray(0, 4).equals(MAGIC)) throw new Error("protobuf: missing the k8s envelope");
  const raw = fields(body.subarray(4)).get(2)?.[0];
  const f = Buffer.isBuffer(raw) ? fields(raw) : new Map<number, (Buffer | number)[]>();
  const unsupported = [...f.keys()].filter((n) => ![1, 3, 4].includes(n));
  if (unsupported.length > 0) throw new Error(`protobuf: DeleteOptions fields ${unsupported.join(", ")} are not bridged`);
  const grace = f.get(1)?.[0];
  const orphan = f.get(3)?.[0];
  return Object.fromEntries(
    Object.entries({
      apiVersion: "meta.k8s.io/v1",
      kind: "DeleteOptions",
      gracePeriodSeconds: typeof grace === "number" ? grace : undefined,
      orphanDependents: orphan === undefined ? undefined : orphan === 1,
      propagationPolicy: text(f, 4),
    }).filter(([, v]) => v !== undefined),
  );
}

export interface ProtobufSecretBridge {
  url: string;
  /** Secret bodies re-encoded so far (the test asserts helm's release storage went through the bridge). */
  converted: () => number;
  close: () => Promise<void>;
}

/** Starts the bridge on 127.0.0.1 with a certificate from `ca`, forwarding to the emulator at `upstream`. */
export async function startProtobufSecretBridge(ca: TestbedCa, upstream: string): Promise<ProtobufSecretBridge> {
  const { certPem, keyPem } = await ca.issue({ ipAddresses: ["127.0.0.1"] });
  const target = new URL(upstream);
  let converted = 0;
  const server: Server = createServer({ cert: certPem, key: keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) req.destroy();
      else chunks.push(c);
    });
    req.on("end", () => {
      let body = Buffer.concat(chunks);
      const headers = { ...req.headers, host: target.host };
      const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim();
      if (type === PROTOBUF && (req.method === "POST" || req.method === "PUT" || req.method === "DELETE") && SECRET_PATH.test(req.url ?? "")) {
        try {
          body = Buffer.from(JSON.stringify(req.method === "DELETE" ? deleteOptionsFromProtobuf(body) : secretFromProtobuf(body)));
          headers["content-type"] = "application/json";
          converted++;
        } catch (error) {
          res.writeHead(400, { "content-type": "text/plain" }).end(`protobuf-secret-bridge: ${(error as Error).message}`);
          return;
        }
      }
      headers["content-length"] = String(body.length);
      delete headers["transfer-encoding"];
      const up = httpsRequest(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers, ca: ca.certPem, timeout: 30_000 },
        (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
        },
      );
      up.on("timeout", () => up.destroy(new Error("upstream timeout")));
      up.on("error", (e) => {
        if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
        res.end(`protobuf-secret-bridge: ${e.message}`);
      });
      up.end(body);
    });
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    converted: () => converted,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((ok) => server.close(() => ok()));
    },
  };
}
