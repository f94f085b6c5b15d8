import { errorLogFields, exitOnStartupError, logLegacyFlagNotices, runDaemon } from "@podidentity/daemon";
import pino from "pino";
import { isCleanupCommand, parseCleanupOptions, parseCliOptions } from "./cli-options";
import { execRunner } from "./interception/command-runner";
import { removeInterceptionRules } from "./interception/rule-cleanup";
import { KubeClient } from "@podidentity/kube";
import { Nmi } from "./nmi";

const argv = process.argv.slice(2);

/**
 * Log lines go to stdout synchronously: pino's default asynchronous stream reorders the lines written just before
 * `process.exit` (the first write still in flight lands after the flushed rest), which garbles a fatal startup.
 */
const stdout = pino.destination({ dest: 1, sync: true });

/** `podidentity-nmi cleanup`: remove the rules and exit; no API server, no listener. */
async function cleanup(): Promise<void> {
  const options = parseCleanupOptions(argv.slice(1));
  const logger = pino({ name: "podidentity-nmi", level: options.logLevel }, stdout);
  try {
    const report = await removeInterceptionRules(execRunner());
    logger.info({ backends: report.backends, removed: report.removed }, report.removed.length > 0 ? "NMI's iptables rules removed" : "no NMI iptables rules on this node: nothing to remove");
    process.exit(0);
  } catch (error) {
    logger.error(errorLogFields(error), "cleanup failed: NMI's iptables rules may still be on this node");
    process.exit(1);
  }
}

function serve(): void {
  const options = parseCliOptions(argv, process.env);
  const logger = pino({ name: "podidentity-nmi", level: options.logLevel, base: { node: options.config.nodeName } }, stdout);
  logLegacyFlagNotices(logger, options.legacyFlags);
  let nmi: Nmi;
  try {
    const kube = KubeClient.load({ ...(options.kubeconfig !== undefined && { kubeconfigPath: options.kubeconfig }), userAgent: "podidentity-nmi" });
    nmi = new Nmi({ ...options.config, kube, logger });
  } catch (error) {
    exitOnStartupError(logger, error, "NMI could not start");
  }
  const { ownershipTimeoutMs, shutdownGraceMs } = nmi.config;
  runDaemon({
    name: "NMI",
    logger,
    start: () => nmi.start(),
    // Whether the iptables rules stay is decided (and logged) by stop(): only an uninstall removes them. Every other
    // way out (a failed start, a crash, a stop past its deadline) leaves them, and pods' metadata traffic refused.
    stop: async () => void (await nmi.stop()),
    // stop() reads the DaemonSet (at most ownershipTimeoutMs), drains requests (shutdownGraceMs) and may remove the
    // rules: 20 s with the defaults, inside the DaemonSet's 30 s termination grace period.
    stopTimeoutMs: ownershipTimeoutMs + shutdownGraceMs + 10_000,
  });
}

void (isCleanupCommand(argv) ? cleanup() : serve());
