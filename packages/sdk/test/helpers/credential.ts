import { vi } from "vitest";
import { PodIdentityCredential } from "../../src/pod-identity-credential";
import type { PodIdentityCredentialOptions } from "../../src/pod-identity-credential-options";
import { FakeClock } from "./fake-clock";
import { ImdsTestServer } from "./imds-server";

const AZURE_ENV = [
  "AZURE_CLIENT_ID",
  "AZURE_TENANT_ID",
  "AZURE_FEDERATED_TOKEN_FILE",
  "AZURE_POD_IDENTITY_AUTHORITY_HOST",
  "AZURE_AUTHORITY_HOST",
  // Read at construction: in a pod, a refused connection before the first answer is retried briefly.
  "KUBERNETES_SERVICE_HOST",
  // The Azure SDK clients in the drop-in tests would send loopback traffic to a machine-wide proxy.
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "http_proxy",
  "https_proxy",
  "ALL_PROXY",
];

/** Tests must not depend on the machine's Azure or proxy variables: blank them (undone by vi.unstubAllEnvs). */
export function clearAzureEnv(): void {
  for (const name of AZURE_ENV) vi.stubEnv(name, undefined);
}

export interface Harness {
  server: ImdsTestServer;
  clock: FakeClock;
  credential: (options?: PodIdentityCredentialOptions) => PodIdentityCredential;
  close: () => Promise<void>;
}

/** A loopback IMDS server, a fake clock, and credentials wired to both (closed together). */
export async function startHarness(): Promise<Harness> {
  clearAzureEnv();
  const server = await ImdsTestServer.start();
  const clock = new FakeClock();
  server.now = clock.now;
  const credentials: PodIdentityCredential[] = [];
  return {
    server,
    clock,
    credential: (options = {}) => {
      const credential = new PodIdentityCredential({
        endpoint: server.url,
        now: clock.now,
        sleep: clock.sleep,
        random: () => 0.5,
        ...options,
      });
      credentials.push(credential);
      return credential;
    },
    close: async () => {
      await Promise.all(credentials.map((c) => c.close()));
      await server.close();
      vi.unstubAllEnvs();
    },
  };
}
