import { readFileSync } from "node:fs";
import { KubeConfig } from "@kubernetes/client-node";
import { Command, Option } from "commander";
import { pino } from "pino";
import { ReloadingArmCredential, cloudConfigFromEnv, cloudEndpoints, createArmCredential, readCloudConfig } from "./cloud-config";
import { DEFAULT_MIC_OPTIONS } from "./config";
import { parseDuration } from "./duration";
import { Mic } from "./mic";

const version = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;

function parseBool(text: string | undefined): boolean {
  if (text === undefined) return true;
  if (/^(true|1|t|yes)$/i.test(text)) return true;
  if (/^(false|0|f|no)$/i.test(text)) return false;
  throw new Error(`invalid boolean "${text}"`);
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid port "${text}"`);
  return port;
}

/** v1.8 used Go's flag package, which also accepts a single dash (`-kubeconfig=…`); commander needs two. */
function goStyleArgs(argv: string[]): string[] {
  return argv.map((a) => (/^-[a-zA-Z][\w-]+/.test(a) && !a.startsWith("--") ? `-${a}` : a));
}

async function main(): Promise<void> {
  const env = process.env;
  const program = new Command("podidentity-mic")
    .description("Managed Identity Controller: assigns user-assigned identities to nodes' VMs/VMSS for pods with AzureIdentityBindings")
    .version(version, "--version")
    .option("--kubeconfig <path>", "kubeconfig file (default: in-cluster / KUBECONFIG)")
    .option("--cloudconfig <path>", "azure.json; when absent the env vars CLOUD, TENANT_ID, CLIENT_ID, CLIENT_SECRET, SUBSCRIPTION_ID, RESOURCE_GROUP, VM_TYPE, USE_MSI, USER_ASSIGNED_MSI_CLIENT_ID are used")
    .addOption(new Option("--force-namespaced [bool]", "namespaced matching (also env FORCENAMESPACED)").argParser(parseBool))
    .addOption(new Option("--forceNamespaced [bool]", "alias of --force-namespaced (v1.8)").argParser(parseBool))
    .option("--immutable-user-msis <clientIds>", "comma-separated client IDs never removed from a VM/VMSS", "")
    .option("--identity-assignment-reconcile-interval <duration>", "drift repair interval", "3m")
    .option("--leader-election-instance <name>", "this replica's identity in the lease", DEFAULT_MIC_OPTIONS.leaderElection.identity)
    .option("--leader-election-namespace <ns>", "namespace of the Lease", env["MIC_POD_NAMESPACE"] ?? DEFAULT_MIC_OPTIONS.leaderElection.namespace)
    .option("--leader-election-name <name>", "name of the Lease", DEFAULT_MIC_OPTIONS.leaderElection.name)
    .option("--leader-election-duration <duration>", "lease duration", "15s")
    .option("--http-probe-port <port>", "/healthz and /readyz", String(DEFAULT_MIC_OPTIONS.httpProbePort))
    .option("--prometheus-port <port>", "/metrics", String(DEFAULT_MIC_OPTIONS.prometheusPort))
    .option("--arm-endpoint <url>", "Azure Resource Manager endpoint (default: the cloud's)")
    .option("--authority-host <url>", "Entra ID authority host (default: the cloud's)")
    .option("--arm-write-budget <n/perMinute>", "PATCHes per VM/VMSS: burst/refill per minute", "12/4")
    .option("--log-level <level>", "pino log level", env["LOG_LEVEL"] ?? "info")
    // Accepted for v1.8 compatibility; MIC is level-based, so these have no job left.
    .addOption(new Option("--syncRetryDuration <duration>").hideHelp())
    .addOption(new Option("--log-format <format>").hideHelp())
    .addOption(new Option("--enableScaleFeatures [bool]").hideHelp())
    .addOption(new Option("--createDeleteBatch <n>").hideHelp())
    .addOption(new Option("--clientQps <n>").hideHelp())
    .addOption(new Option("--update-user-msi-max-retry <n>").hideHelp())
    .addOption(new Option("--update-user-msi-retry-interval <duration>").hideHelp())
    .addOption(new Option("--enable-type-upgrade [bool]").hideHelp())
    .addOption(new Option("--custom-user-agent <ua>").hideHelp());
  program.parse(goStyleArgs(process.argv));
  const opts = program.opts<Record<string, string | boolean | undefined>>();
  const logger = pino({ name: "podidentity-mic", level: String(opts["logLevel"]) });

  const forceNamespaced =
    (opts["forceNamespaced"] as boolean | undefined) ?? (env["FORCENAMESPACED"] !== undefined ? parseBool(env["FORCENAMESPACED"]) : DEFAULT_MIC_OPTIONS.forceNamespaced);
  const cloudConfig = typeof opts["cloudconfig"] === "string" ? await readCloudConfig(opts["cloudconfig"]) : cloudConfigFromEnv(env);
  const endpoints = cloudEndpoints(cloudConfig.cloud);
  const authorityHost = (opts["authorityHost"] as string | undefined) ?? endpoints.authorityHost;
  let credential = createArmCredential(cloudConfig, { authorityHost });
  if (typeof opts["cloudconfig"] === "string") {
    credential = new ReloadingArmCredential(opts["cloudconfig"], credential, {
      authorityHost,
      onError: (error) => logger.error({ err: error.message }, "azure.json changed but cannot be used; keeping the previous credential"),
    });
  }
  const immutable = String(opts["immutableUserMsis"] ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  // v1.8: the cluster's own identity is never removed.
  if (cloudConfig.userAssignedIdentityID) immutable.push(cloudConfig.userAssignedIdentityID);
  const [burst, perMinute] = String(opts["armWriteBudget"]).split("/").map(Number);
  const leaseDurationMs = parseDuration(String(opts["leaderElectionDuration"]));

  const kubeConfig = new KubeConfig();
  if (typeof opts["kubeconfig"] === "string" && opts["kubeconfig"] !== "") kubeConfig.loadFromFile(opts["kubeconfig"]);
  else kubeConfig.loadFromDefault();

  const mic = new Mic({
    kubeConfig,
    credential,
    armEndpoint: (opts["armEndpoint"] as string | undefined) ?? endpoints.resourceManager,
    armScope: endpoints.armScope,
    ...(cloudConfig.subscriptionId && { subscriptionId: cloudConfig.subscriptionId }),
    ...(cloudConfig.resourceGroup && { resourceGroup: cloudConfig.resourceGroup }),
    forceNamespaced,
    immutableUserMsis: immutable,
    identityAssignmentReconcileIntervalMs: parseDuration(String(opts["identityAssignmentReconcileInterval"])),
    leaderElection: {
      identity: String(opts["leaderElectionInstance"]),
      namespace: String(opts["leaderElectionNamespace"]),
      name: String(opts["leaderElectionName"]),
      leaseDurationMs,
      renewDeadlineMs: Math.round((leaseDurationMs * 2) / 3),
      retryPeriodMs: Math.max(500, Math.round(leaseDurationMs / 7.5)),
    },
    writeBudget: { capacity: burst || DEFAULT_MIC_OPTIONS.writeBudget.capacity, refillPerMinute: perMinute || DEFAULT_MIC_OPTIONS.writeBudget.refillPerMinute },
    httpProbePort: parsePort(String(opts["httpProbePort"])),
    prometheusPort: parsePort(String(opts["prometheusPort"])),
    logger,
    defaultMetrics: true,
  });

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    mic.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: String(error) }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
  await mic.start();
}

main().catch((error: unknown) => {
  console.error(`podidentity-mic: ${(error as Error)?.message ?? String(error)}`);
  process.exit(1);
});
