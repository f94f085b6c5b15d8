import { generateKeyPairSync } from "node:crypto";
import forge from "node-forge";

/** A self-signed RSA certificate as PEM, and the same certificate + key as a password-protected PKCS#12 (v1.8's Secret format). */
export function createPkcs12(password: string): { certPem: string; pkcs12: Buffer } {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const key = forge.pki.privateKeyFromPem(privateKey.export({ type: "pkcs8", format: "pem" }) as string) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  cert.serialNumber = "01";
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 24 * 3600_000);
  const attrs = [{ name: "commonName", value: "nmi-sp" }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.sign(key, forge.md.sha256.create());
  const p12 = forge.pkcs12.toPkcs12Asn1(key, [cert], password, { algorithm: "3des" });
  return { certPem: forge.pki.certificateToPem(cert), pkcs12: Buffer.from(forge.asn1.toDer(p12).getBytes(), "binary") };
}
