import { readFileSync } from "node:fs";
import { loadKubeConfig } from "@podidentity/kube";
import {
  exitOnStartupError,
  runDaemon,
  forceNamespacedSetting,
  formatDuration,
  goStyleArgs,
  logLegacyFlagNotices,
  longFlagNames,
  orUsageError,
  parseBool,
  parseCsv,
  parseDuration,
  parsePort,
  takeLegacyFlags,
} from "@podidentity/daemon";
import { Command, Option } from "commander";
import { pino, type Logger } from "pino";
import { ReloadingArmCredential, cloudConfigFromEnv, cloudEndpoints, createArmCredential, readCloudConfig } from "./runtime/cloud-config";
import { DEFAULT_MIC_OPTIONS } from "./runtime/config";
import { Mic } from "./mic";

const version = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;

/**
 * Log lines go to stdout synchronously: pino's default asynchronous stream reorders the lines written just before
 * `process.exit` (the first write still in flight lands after the flushed rest), which garbles a fatal startup.
 */
const stdout = pino.destination({ dest: 1, sync: true });

async function main(): Promise<void> {
  const env = process.env;
  const D = DEFAULT_MIC_OPTIONS;
  const program = new Command("podidentity-mic")
    .description("Managed Identity Controller: assigns user-assigned identities to nodes' VMs/VMSS for pods with AzureIdentityBindings")
    .version(version, "--version")
    .option("--kubeconfig <path>", "kubeconfig file (default: $KUBECONFIG, then in-cluster, then ~/.kube/config)")
    .option("--cloudconfig <path>", "azure.json; when absent the env vars CLOUD, TENANT_ID, CLIENT_ID, CLIENT_SECRET, SUBSCRIPTION_ID, RESOURCE_GROUP, VM_TYPE, USE_MSI, USER_ASSIGNED_MSI_CLIENT_ID are used")
    .addOption(new Option("--force-namespaced [bool]", "namespaced matching (also env FORCENAMESPACED)").argParser(parseBool))
    .addOption(new Option("--forceNamespaced [bool]", "alias of --force-namespaced (v1.8)").argParser(parseBool))
    .option("--immutable-user-msis <clientIds>", "comma-separated client IDs never removed from a VM/VMSS", D.immutableUserMsis.join(","))
    .addOption(
      new Option("--identity-assignment-reconcile-interval <duration>", "drift repair interval")
        .argParser(parseDuration)
        .default(D.identityAssignmentReconcileIntervalMs, formatDuration(D.identityAssignmentReconcileIntervalMs)),
    )
    .option("--leader-election-instance <name>", "this replica's identity in the lease", D.leaderElection.identity)
    .option("--leader-election-namespace <ns>", "namespace of the Lease", env["MIC_POD_NAMESPACE"] ?? D.leaderElection.namespace)
    .option("--leader-election-name <name>", "name of the Lease", D.leaderElection.name)
    .addOption(
      new Option("--leader-election-duration <duration>", "lease duration (renewal deadline 2/3 of it, retries every 1/7.5)")
        .argParser(parseDuration)
        .default(D.leaderElection.leaseDurationMs, formatDuration(D.leaderElection.leaseDurationMs)),
    )
    .option("--http-probe-port <port>", "/healthz and /readyz", parsePort, D.httpProbePort)
    .option("--prometheus-port <port>", "/metrics", parsePort, D.prometheusPort)
    .option("--arm-endpoint <url>", "Azure Resource Manager endpoint (default: the cloud's)")
    .option("--authority-host <url>", "Entra ID authority host (default: the cloud's)")
    .option("--arm-write-budget <n/perMinute>", "PATCHes per VM/VMSS: burst/refill per minute", `${D.writeBudget.capacity}/${D.writeBudget.refillPerMinute}`)
    .option("--log-level <level>", "pino log level (default: env LOG_LEVEL, or what klog's -v given by v1.8 manifests maps to, else info)");
  // v1.8 used Go's flag package: one-dash long flags (`-kubeconfig=…`) work, and v1.8's flags MIC has no flag of
  // that name for (klog's, --syncRetryDuration, --createDeleteBatch …) are mapped or ignored with a warning, never
  // a crash-loop after a migration (@podidentity/daemon's legacy-flags.ts lists them with the reasons).
  const userArgs = process.argv.slice(2);
  const legacy = orUsageError(program, () => takeLegacyFlags(userArgs, "mic"));
  program.parse(goStyleArgs(legacy.args, longFlagNames(program.options.map((o) => o.flags))), { from: "user" });
  const opts = program.opts<Record<string, unknown>>();
  const logLevel = typeof opts["logLevel"] === "string" ? opts["logLevel"] : (env["LOG_LEVEL"] ?? legacy.logLevel ?? "info");
  const logger = pino({ name: "podidentity-mic", level: logLevel }, stdout);
  logLegacyFlagNotices(logger, legacy.notices);
  try {
    await run(opts, logger);
  } catch (error) {
    exitOnStartupError(logger, error, "MIC could not start");
  }
}

async function run(opts: Record<string, unknown>, logger: Logger): Promise<void> {
  const env = process.env;
  const forceNamespaced = forceNamespacedSetting(opts["forceNamespaced"] as boolean | undefined, env, DEFAULT_MIC_OPTIONS.forceNamespaced);
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
  const immutable = parseCsv(String(opts["immutableUserMsis"] ?? ""));
  // v1.8: the cluster's own identity is never removed.
  if (cloudConfig.userAssignedIdentityID) immutable.push(cloudConfig.userAssignedIdentityID);
  const [burst, perMinute] = String(opts["armWriteBudget"]).split("/").map(Number);

  // The flag, then $KUBECONFIG, in-cluster, ~/.kube/config (a KubeConfigError names the file and field at fault).
  const kubeConfig = loadKubeConfig({ ...(typeof opts["kubeconfig"] === "string" && opts["kubeconfig"] !== "" && { kubeconfigPath: opts["kubeconfig"] }) });

  const mic = new Mic({
    kubeConfig,
    credential,
    armEndpoint: (opts["armEndpoint"] as string | undefined) ?? endpoints.resourceManager,
    armScope: endpoints.armScope,
    ...(cloudConfig.subscriptionId && { subscriptionId: cloudConfig.subscriptionId }),
    ...(cloudConfig.resourceGroup && { resourceGroup: cloudConfig.resourceGroup }),
    forceNamespaced,
    immutableUserMsis: immutable,
    identityAssignmentReconcileIntervalMs: opts["identityAssignmentReconcileInterval"] as number,
    // The renewal deadline and retry period follow from the duration (runtime/config.ts).
    leaderElection: {
      identity: String(opts["leaderElectionInstance"]),
      namespace: String(opts["leaderElectionNamespace"]),
      name: String(opts["leaderElectionName"]),
      leaseDurationMs: opts["leaderElectionDuration"] as number,
    },
    // A part that is not a number keeps its default (resolveMicConfig fills it in).
    writeBudget: { ...(burst && { capacity: burst }), ...(perMinute && { refillPerMinute: perMinute }) },
    httpProbePort: opts["httpProbePort"] as number,
    prometheusPort: opts["prometheusPort"] as number,
    logger,
    defaultMetrics: true,
  });

  runDaemon({
    name: "MIC",
    logger,
    start: () => mic.start(),
    stop: () => mic.stop(),
    // stop() releases the lease (one bounded API call) and closes informers and servers.
    stopTimeoutMs: 20_000,
  });
}

main().catch((error: unknown) => {
  // Only what fails before the configured logger exists (e.g. pino refusing --log-level): the same JSON fatal line.
  exitOnStartupError(pino({ name: "podidentity-mic" }, stdout), error, "MIC could not start");
});
