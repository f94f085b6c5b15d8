import pino from "pino";
import { parseCliOptions } from "./cli-options";
import { KubeClient } from "./kube/kube-client";
import { Nmi } from "./nmi";

const options = parseCliOptions(process.argv.slice(2), process.env);
const logger = pino({ name: "podidentity-nmi", level: options.logLevel, base: { node: options.config.nodeName } });

async function main(): Promise<void> {
  const kube = KubeClient.fromDefault(options.kubeconfig);
  const nmi = new Nmi({ ...options.config, kube, logger });
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down: removing iptables rules");
    nmi.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: (error as Error).message }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
  await nmi.start();
}

main().catch((error: unknown) => {
  logger.fatal({ err: (error as Error).message, code: (error as { code?: string }).code }, "NMI could not start");
  process.exit(1);
});
