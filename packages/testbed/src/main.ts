import { CommanderError } from "commander";
import { createCli } from "./cli";

// The deployable entry point: the only file that touches argv, signals and process.exit.
const stop = new Promise<string>((resolve) => {
  process.once("SIGINT", () => resolve("SIGINT"));
  process.once("SIGTERM", () => resolve("SIGTERM"));
});

const program = createCli({
  stdout: (line) => process.stdout.write(`${line}\n`),
  stderr: (line) => process.stderr.write(`${line}\n`),
  waitForStop: () => stop,
  kill: (pid, signal) => {
    try {
      process.kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  },
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  pid: process.pid,
});

program.parseAsync(process.argv).then(
  () => process.exit(0),
  (error: unknown) => {
    if (error instanceof CommanderError) process.exit(error.exitCode);
    process.stderr.write(`podidentity-testbed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
