import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { packageVersion } from "../package-version";
import { formatReport } from "./format-report";
import { runDoctor } from "./run-doctor";

/** Where the CLI writes: the bin passes the console, tests pass collectors. */
export interface CliOutput {
  out: (text: string) => void;
  err: (text: string) => void;
}

function positiveMs(value: string): number {
  const ms = Number(value);
  if (!Number.isFinite(ms) || ms <= 0) throw new InvalidArgumentError("expected a number of milliseconds > 0");
  return ms;
}

/**
 * Runs the `podidentity` CLI and resolves to its exit code: 0 only when doctor obtained a token, 1 when it
 * did not, 2 for usage errors.
 */
export async function runCli(argv: readonly string[], output: CliOutput): Promise<number> {
  let exitCode = 0;
  const program = new Command("podidentity")
    .description("Azure AD pod identity tools")
    .version(packageVersion(), "-V, --version", "print the version of @podidentity/sdk")
    .exitOverride()
    .configureOutput({ writeOut: (s) => output.out(s.trimEnd()), writeErr: (s) => output.err(s.trimEnd()) });
  program
    .command("doctor")
    .description("check this pod's identity endpoint and get a token, explaining any failure")
    .option("--endpoint <url>", "IMDS endpoint (default: env AZURE_POD_IDENTITY_AUTHORITY_HOST or http://169.254.169.254)")
    .addOption(new Option("--client-id <id>", "user-assigned identity by client ID").conflicts(["resourceId", "objectId"]))
    .addOption(new Option("--resource-id <id>", "user-assigned identity by ARM resource ID").conflicts(["objectId"]))
    .option("--object-id <id>", "user-assigned identity by object ID")
    .option("--resource <uri>", "resource to get a token for", "https://management.azure.com/")
    .option("--timeout <ms>", "overall time allowed for the whole check (probe, token request, retries): the last attempt is cut to fit", positiveMs, 30_000)
    .option("--json", "print the report as JSON")
    .action(async (opts: { endpoint?: string; clientId?: string; resourceId?: string; objectId?: string; resource: string; timeout: number; json?: boolean }) => {
      const report = await runDoctor({
        resource: opts.resource,
        timeoutMs: opts.timeout,
        ...(opts.endpoint === undefined ? {} : { endpoint: opts.endpoint }),
        ...(opts.clientId === undefined ? {} : { clientId: opts.clientId }),
        ...(opts.resourceId === undefined ? {} : { resourceId: opts.resourceId }),
        ...(opts.objectId === undefined ? {} : { objectId: opts.objectId }),
      });
      if (opts.json) output.out(JSON.stringify(report, null, 2));
      else for (const line of formatReport(report)) output.out(line);
      exitCode = report.ok ? 0 : 1;
    });
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    throw error;
  }
  return exitCode;
}
