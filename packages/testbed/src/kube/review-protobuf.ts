/**
 * kubectl (client-go) sends SelfSubjectAccessReview and SelfSubjectReview bodies as Kubernetes protobuf
 * (`application/vnd.kubernetes.protobuf`), which a real kube-apiserver decodes; the emulator speaks JSON
 * everywhere else. This decodes just those two kinds into their JSON form, so `kubectl auth can-i` and
 * `kubectl auth whoami` work unchanged. The answer is JSON: client-go decodes a response by its Content-Type.
 *
 * Wire format (k8s.io/apimachinery runtime/serializer/protobuf): the 4-byte magic "k8s\0", then a runtime.Unknown
 * message { 1: typeMeta { 1: apiVersion, 2: kind }, 2: raw (the object's own message), 3: contentEncoding,
 * 4: contentType }. SelfSubjectAccessReview { 1: metadata, 2: spec { 1: resourceAttributes { 1: namespace, 2: verb,
 * 3: group, 4: version, 5: resource, 6: subresource, 7: name }, 2: nonResourceAttributes { 1: path, 2: verb } } }
 * (k8s.io/api/authorization/v1/generated.proto); SelfSubjectReview has only metadata.
 */
import { badRequest } from "./status-errors";

export const KUBERNETES_PROTOBUF = "application/vnd.kubernetes.protobuf";
const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

type Fields = Map<number, Buffer[]>;

/** The length-delimited fields of one protobuf message (varints are skipped: these messages use none we read). */
function fieldsOf(buf: Buffer): Fields {
  const fields: Fields = new Map();
  let i = 0;
  const varint = (): number => {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (i >= buf.length) throw badRequest("protobuf body ends inside a varint");
      const b = buf[i++]!;
      value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return value;
    }
    throw badRequest("protobuf varint too long");
  };
  while (i < buf.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === 0) varint();
    else if (wire === 2) {
      const len = varint();
      if (i + len > buf.length) throw badRequest("protobuf field runs past the end of the body");
      const list = fields.get(field) ?? [];
      list.push(buf.subarray(i, i + len));
      fields.set(field, list);
      i += len;
    } else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else throw badRequest(`unsupported protobuf wire type ${wire}`);
  }
  return fields;
}

const str = (f: Fields, n: number): string | undefined => f.get(n)?.[0]?.toString("utf8");
const msg = (f: Fields, n: number): Fields | undefined => {
  const b = f.get(n)?.[0];
  return b === undefined ? undefined : fieldsOf(b);
};

function strings(f: Fields | undefined, names: readonly string[]): Record<string, string> | undefined {
  if (f === undefined) return undefined;
  const out: Record<string, string> = {};
  names.forEach((name, index) => {
    const v = str(f, index + 1);
    if (v !== undefined && v !== "") out[name] = v;
  });
  return out;
}

/** The JSON form of a protobuf SelfSubjectAccessReview / SelfSubjectReview body; 400 for anything else. */
export function decodeReviewProtobuf(body: Buffer): Record<string, unknown> {
  if (body.length < 4 || !body.subarray(0, 4).equals(MAGIC)) throw badRequest("protobuf body without the k8s\\0 prefix");
  const unknown = fieldsOf(body.subarray(4));
  const typeMeta = msg(unknown, 1);
  const apiVersion = typeMeta ? str(typeMeta, 1) : undefined;
  const kind = typeMeta ? str(typeMeta, 2) : undefined;
  const raw = unknown.get(2)?.[0] ?? Buffer.alloc(0);
  const object = fieldsOf(raw);
  if (kind === "SelfSubjectReview") return { apiVersion, kind, metadata: {} };
  if (kind !== "SelfSubjectAccessReview") throw badRequest(`protobuf bodies are decoded for SelfSubjectAccessReview and SelfSubjectReview only, got ${kind ?? "no kind"}`);
  const spec = msg(object, 2);
  const resourceAttributes = strings(spec ? msg(spec, 1) : undefined, ["namespace", "verb", "group", "version", "resource", "subresource", "name"]);
  const nonResourceAttributes = strings(spec ? msg(spec, 2) : undefined, ["path", "verb"]);
  return {
    apiVersion,
    kind,
    metadata: {},
    spec: { ...(resourceAttributes && { resourceAttributes }), ...(nonResourceAttributes && { nonResourceAttributes }) },
  };
}
