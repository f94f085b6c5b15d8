// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata polyfill loaded first.
import "reflect-metadata";
import { randomBytes, webcrypto } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";

/** Defaults of {@link TestbedCa}; validity is real wall-clock time because TLS peers check it against their own clocks. */
export const DEFAULT_TESTBED_CA_OPTIONS = {
  commonName: "podidentity testbed CA",
  caValidityMs: 7 * 24 * 60 * 60 * 1000,
  leafValidityMs: 7 * 24 * 60 * 60 * 1000,
  /** Certificates start this much in the past so a peer whose clock runs slightly behind still accepts them. */
  backdateMs: 60 * 60 * 1000,
} as const;

export interface TestbedCaOptions {
  commonName?: string;
}

export interface IssueOptions {
  dnsNames?: string[];
  ipAddresses?: string[];
  /** Subject CN; defaults to the first DNS name or IP address. */
  commonName?: string;
}

export interface IssuedCertificate {
  certPem: string;
  keyPem: string;
}

// ECDSA P-256 keeps generation in the milliseconds, so every test may create its own CA.
const KEY_ALGORITHM: webcrypto.EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
const SIGNING_ALGORITHM: webcrypto.EcdsaParams = { name: "ECDSA", hash: "SHA-256" };
type CryptoKeyPair = webcrypto.CryptoKeyPair;
const { subtle } = webcrypto;

/**
 * A throwaway certificate authority. Servers of the testbed present leaves it issues; clients trust
 * it explicitly (`ca:` options, undici `connect.ca`, NODE_EXTRA_CA_CERTS) — TLS verification stays on.
 */
export class TestbedCa {
  readonly certPem: string;
  readonly #cert: x509.X509Certificate;
  readonly #keys: CryptoKeyPair;

  private constructor(cert: x509.X509Certificate, keys: CryptoKeyPair) {
    this.#cert = cert;
    this.#keys = keys;
    this.certPem = cert.toString("pem") + "\n";
  }

  static async create(options: TestbedCaOptions = {}): Promise<TestbedCa> {
    const commonName = options.commonName ?? DEFAULT_TESTBED_CA_OPTIONS.commonName;
    if (commonName.length === 0 || commonName.length > 64) {
      throw new RangeError(`TestbedCa: commonName must be 1-64 characters, got ${commonName.length}`);
    }
    const keys = await subtle.generateKey(KEY_ALGORITHM, true, ["sign", "verify"]);
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned(
      {
        serialNumber: serialNumber(),
        name: `CN=${escapeDnValue(commonName)}`,
        notBefore: new Date(now - DEFAULT_TESTBED_CA_OPTIONS.backdateMs),
        notAfter: new Date(now + DEFAULT_TESTBED_CA_OPTIONS.caValidityMs),
        keys,
        signingAlgorithm: SIGNING_ALGORITHM,
        extensions: [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
          await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false),
        ],
      },
    );
    return new TestbedCa(cert, keys);
  }

  /** Issues a server leaf (serverAuth) for the given names, signed by this CA. */
  async issue(options: IssueOptions): Promise<IssuedCertificate> {
    const dnsNames = options.dnsNames ?? [];
    const ipAddresses = options.ipAddresses ?? [];
    if (dnsNames.length === 0 && ipAddresses.length === 0) {
      throw new TypeError("TestbedCa.issue: give at least one of dnsNames or ipAddresses");
    }
    for (const ip of ipAddresses) {
      if (isIP(ip) === 0) throw new TypeError(`TestbedCa.issue: ipAddresses contains "${ip}", which is not an IP address`);
    }
    for (const name of dnsNames) {
      if (!/^(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/.test(name)) {
        throw new TypeError(`TestbedCa.issue: dnsNames contains "${name}", which is not a DNS name`);
      }
    }
    const commonName = options.commonName ?? dnsNames[0] ?? ipAddresses[0] ?? "";
    const keys = await subtle.generateKey(KEY_ALGORITHM, true, ["sign", "verify"]);
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.create(
      {
        serialNumber: serialNumber(),
        subject: `CN=${escapeDnValue(commonName)}`,
        issuer: this.#cert.subject,
        notBefore: new Date(now - DEFAULT_TESTBED_CA_OPTIONS.backdateMs),
        notAfter: new Date(
          Math.min(now + DEFAULT_TESTBED_CA_OPTIONS.leafValidityMs, this.#cert.notAfter.getTime()),
        ),
        publicKey: keys.publicKey,
        signingKey: this.#keys.privateKey,
        signingAlgorithm: SIGNING_ALGORITHM,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
          new x509.SubjectAlternativeNameExtension(
            [
              ...dnsNames.map((value) => ({ type: "dns" as const, value })),
              ...ipAddresses.map((value) => ({ type: "ip" as const, value })),
            ],
            false,
          ),
          await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false),
          await x509.AuthorityKeyIdentifierExtension.create(this.#keys.publicKey, false),
        ],
      },
    );
    const pkcs8 = await subtle.exportKey("pkcs8", keys.privateKey);
    return {
      certPem: cert.toString("pem") + "\n",
      keyPem: x509.PemConverter.encode(pkcs8, "PRIVATE KEY") + "\n",
    };
  }

  /** Writes the CA certificate as `ca.pem` into `dir` (created if missing) and returns the file path. */
  async writeCaFile(dir: string): Promise<string> {
    await mkdir(dir, { recursive: true });
    const path = join(dir, "ca.pem");
    await writeFile(path, this.certPem, { mode: 0o644 });
    return path;
  }
}

function serialNumber(): string {
  // Positive 16-byte serial: clear the top bit so DER does not read it as negative.
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString("hex");
}

function escapeDnValue(value: string): string {
  return value.replace(/([,+"\\<>;=])/g, "\\$1");
}
