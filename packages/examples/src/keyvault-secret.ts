// keyvault-secret: reads one secret from Azure Key Vault with the pod's identity and prints its name,
// version and length — never its value.
//
//   KEY_VAULT_URL=https://my-vault.vault.azure.net SECRET_NAME=db-password node dist/keyvault-secret.js
//
// Env: KEY_VAULT_URL, SECRET_NAME (required); EXAMPLE_INTERVAL_SECONDS (repeat until SIGTERM);
// EXAMPLE_CREDENTIAL (pod-identity | chain), AZURE_CLIENT_ID, AZURE_POD_IDENTITY_AUTHORITY_HOST (see credential.ts).
// The identity needs an access policy with secrets "get" (or the "Key Vault Secrets User" role).
import { isIP } from "node:net";
import { SecretClient } from "@azure/keyvault-secrets";
import { createExampleCredential } from "./credential";
import { ExampleError, requireEnv, restError, runExample, type ExampleApp } from "./run-example";

async function setup(env = process.env): Promise<ExampleApp> {
  const vaultUrl = requireEnv(env, "KEY_VAULT_URL", "https://my-vault.vault.azure.net");
  const secretName = requireEnv(env, "SECRET_NAME", "db-password");
  const { credential, description, close } = createExampleCredential(env);
  console.log(`credential: ${description}`);
  const client = new SecretClient(vaultUrl, credential, {
    // Key Vault's 401 challenge names vault.azure.net; the client checks it against the URL's host. A real
    // vault is always a *.vault.azure.net name, so only an IP address (a local emulator) skips the check.
    disableChallengeResourceVerification: isIP(new URL(vaultUrl).hostname.replace(/^\[|\]$/g, "")) !== 0,
  });
  const run = async () => {
    let secret;
    try {
      secret = await client.getSecret(secretName);
    } catch (error) {
      const rest = restError(error);
      if (rest) throw new ExampleError(`Key Vault ${vaultUrl} refused to read secret '${secretName}': HTTP ${rest.statusCode} ${rest.code}`, { cause: error });
      throw error;
    }
    console.log(`secret: ${secret.name}, version ${secret.properties.version ?? "?"}, ${secret.value?.length ?? 0} characters (value not printed)`);
  };
  return { run, close };
}

runExample(() => setup());
