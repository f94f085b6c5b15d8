import { AzureCliCredential, ChainedTokenCredential, EnvironmentCredential } from "@azure/identity";
import type { TokenCredential } from "@azure/core-auth";
import { PodIdentityCredential } from "@podidentity/sdk";

/** What the examples read from the environment to build their credential. */
export interface ExampleCredential {
  /** Hand this to every Azure client of the process. */
  credential: TokenCredential;
  /** One line for the app's output: which credential, and where it gets tokens. */
  description: string;
  /** Releases the credential's connections so the process can exit at once. */
  close(): Promise<void>;
}

/**
 * Builds the ONE credential an example app shares between all its clients (the cache and the
 * single-flight live in the instance, so one per process is what keeps NMI/IMDS quiet).
 *
 * `EXAMPLE_CREDENTIAL=pod-identity` (default): `PodIdentityCredential` alone — what a pod needs.
 * `EXAMPLE_CREDENTIAL=chain`: the same credential first in a `ChainedTokenCredential`, followed by
 * @azure/identity's EnvironmentCredential and AzureCliCredential, DefaultAzureCredential-style: in a pod
 * the pod identity answers; on a laptop without an IMDS endpoint it throws CredentialUnavailableError and
 * the chain moves on to your `az login`.
 */
export function createExampleCredential(env: NodeJS.ProcessEnv = process.env): ExampleCredential {
  const mode = env["EXAMPLE_CREDENTIAL"] ?? "pod-identity";
  if (mode !== "pod-identity" && mode !== "chain") {
    throw new TypeError(`EXAMPLE_CREDENTIAL must be "pod-identity" or "chain", got "${mode}"`);
  }
  // AZURE_CLIENT_ID (when set) selects a user-assigned identity; AZURE_POD_IDENTITY_AUTHORITY_HOST
  // overrides the endpoint (default http://169.254.169.254, intercepted by NMI).
  const podIdentity =
    mode === "chain"
      ? // In a chain, give up on an absent endpoint quickly so the next credential gets its turn.
        new PodIdentityCredential({ retry: { maxElapsedMs: 5_000 } })
      : new PodIdentityCredential();
  const close = () => podIdentity.close();
  if (mode === "pod-identity") {
    return { credential: podIdentity, description: `PodIdentityCredential (${podIdentity.mode}: ${podIdentity.target})`, close };
  }
  const chain = new ChainedTokenCredential(podIdentity, new EnvironmentCredential(), new AzureCliCredential());
  return {
    credential: chain,
    description: `ChainedTokenCredential [PodIdentityCredential (${podIdentity.mode}: ${podIdentity.target}), EnvironmentCredential, AzureCliCredential]`,
    close,
  };
}
