// blob-storage: with the pod's identity, creates a container if it is missing, uploads a small blob and
// downloads it again, then prints what it did.
//
//   BLOB_ACCOUNT_URL=https://myaccount.blob.core.windows.net node dist/blob-storage.js
//
// Env: BLOB_ACCOUNT_URL (required); BLOB_CONTAINER (default podidentity-example), BLOB_NAME (default
// hello-from-<hostname>.txt); EXAMPLE_INTERVAL_SECONDS (repeat until SIGTERM); EXAMPLE_CREDENTIAL,
// AZURE_CLIENT_ID, AZURE_POD_IDENTITY_AUTHORITY_HOST (see credential.ts).
// The identity needs the "Storage Blob Data Contributor" role on the account or container.
import { hostname } from "node:os";
import { BlobServiceClient } from "@azure/storage-blob";
import { createExampleCredential } from "./credential";
import { ExampleError, requireEnv, restError, runExample, type ExampleApp } from "./run-example";

async function setup(env = process.env): Promise<ExampleApp> {
  const accountUrl = requireEnv(env, "BLOB_ACCOUNT_URL", "https://myaccount.blob.core.windows.net");
  const containerName = env["BLOB_CONTAINER"] ?? "podidentity-example";
  const blobName = env["BLOB_NAME"] ?? `hello-from-${hostname()}.txt`;
  const { credential, description, close } = createExampleCredential(env);
  console.log(`credential: ${description}`);
  const container = new BlobServiceClient(accountUrl, credential).getContainerClient(containerName);

  /** Turns the service's refusal (an HTTP answer) into one line naming what was refused. */
  const step = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (error) {
      const rest = restError(error);
      if (rest) throw new ExampleError(`Blob Storage ${accountUrl} refused to ${what}: HTTP ${rest.statusCode} ${rest.code}`, { cause: error });
      throw error;
    }
  };

  const run = async () => {
    const created = await step(`create container '${containerName}'`, () => container.createIfNotExists());
    console.log(`container: ${containerName} (${created.succeeded ? "created" : "already there"})`);

    const content = `hello from ${hostname()} at ${new Date().toISOString()}\n`;
    const bytes = Buffer.byteLength(content);
    const blob = container.getBlockBlobClient(blobName);
    const uploaded = await step(`upload blob '${blobName}'`, () => blob.upload(content, bytes));
    console.log(`uploaded: ${containerName}/${blobName}, ${bytes} bytes, etag ${uploaded.etag ?? "?"}`);

    const downloaded = await step(`download blob '${blobName}'`, () => blob.downloadToBuffer());
    const same = downloaded.toString("utf8") === content;
    console.log(`downloaded: ${downloaded.length} bytes, ${same ? "content matches" : "CONTENT DIFFERS"}`);
    if (!same) throw new ExampleError("the downloaded blob differs from the uploaded one");
  };
  return { run, close };
}

runExample(() => setup());
