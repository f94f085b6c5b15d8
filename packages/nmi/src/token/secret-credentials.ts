import type * as Forge from "node-forge";
import { NMI_ERROR_CODE, NmiError } from "../errors";

/** Raised when an identity's Secret is missing or unusable: a configuration problem of the AzureIdentity. */
export const IDENTITY_INVALID_CODE = NMI_ERROR_CODE.IdentityInvalid;

function invalid(message: string, cause?: unknown): NmiError {
  return new NmiError(500, IDENTITY_INVALID_CODE, message, cause === undefined ? {} : { cause });
}

/**
 * The client secret of a type-1 identity. v1.8 took the first value of `data` (a random one when there were
 * several keys); we prefer a key named clientSecret/client-secret/clientsecret, else the only key, else the
 * first key in sorted order, so the choice is stable.
 */
export function clientSecretFrom(data: Record<string, string>, where: string): string {
  const keys = Object.keys(data).sort();
  if (keys.length === 0) throw invalid(`${where} has no data; put the client secret under the key clientsecret`);
  const named = keys.find((k) => /^client-?secret$/i.test(k));
  const key = named ?? keys[0]!;
  return Buffer.from(data[key] ?? "", "base64").toString("utf8");
}

/**
 * The certificate of a type-2 identity as the PEM @azure/identity wants (certificate + private key), from v1.8's
 * Secret keys `certificate` (PKCS#12, binary) and `password`. A PEM in `certificate` is accepted as is.
 */
export async function certificatePemFrom(data: Record<string, string>, where: string): Promise<string> {
  const raw = data["certificate"];
  if (raw === undefined) throw invalid(`${where} has no key "certificate" (PKCS#12, with its password under "password")`);
  const bytes = Buffer.from(raw, "base64");
  const text = bytes.toString("utf8");
  if (text.includes("-----BEGIN")) return text;
  const password = Buffer.from(data["password"] ?? "", "base64").toString("utf8");
  // node-forge only for PKCS#12 (Node's crypto cannot read it), loaded when a type-2 identity is first used.
  const forge = (await import("node-forge")).default;
  try {
    const asn1 = forge.asn1.fromDer(forge.util.createBuffer(bytes.toString("binary")));
    const p12 = forge.pkcs12.pkcs12FromAsn1(asn1, false, password);
    const oids = forge.pki.oids as Record<string, string>;
    const bags = (type: string): Forge.pkcs12.Bag[] => p12.getBags({ bagType: type })[type] ?? [];
    const keyBags = [...bags(oids["pkcs8ShroudedKeyBag"]!), ...bags(oids["keyBag"]!)];
    const key = keyBags.find((b) => b.key !== undefined)?.key;
    const cert = bags(oids["certBag"]!).find((b) => b.cert !== undefined)?.cert;
    if (key === undefined || cert === undefined) throw new Error("the PKCS#12 holds no private key or no certificate");
    return `${forge.pki.certificateToPem(cert)}${forge.pki.privateKeyToPem(key as Forge.pki.rsa.PrivateKey)}`;
  } catch (cause) {
    // node-forge's messages name the structure, never the password.
    throw invalid(`${where}: the PKCS#12 in "certificate" could not be read with the password in "password" (RSA keys only, as in v1.8)`, cause);
  }
}
