import { execFile } from "node:child_process";

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program; never throws for a non-zero exit (callers decide what an exit code means). */
export type CommandRunner = (file: string, args: readonly string[]) => Promise<CommandResult>;

/**
 * The default runner, optionally behind a prefix such as `["ip", "netns", "exec", "<ns>"]` or
 * `["nsenter", "--net=/proc/1/ns/net"]`, so NMI can manage another network namespace than its own.
 */
export function execRunner(prefix: readonly string[] = [], timeoutMs = 10_000): CommandRunner {
  return (file, args) =>
    new Promise<CommandResult>((resolve, reject) => {
      const [program, ...rest] = [...prefix, file, ...args];
      execFile(program!, rest, { timeout: timeoutMs, encoding: "utf8" }, (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== "number") {
          // Not an exit status: the program is missing or was killed.
          reject(new Error(`${[...prefix, file].join(" ")}: ${error.message}`, { cause: error }));
          return;
        }
        resolve({ code: error === null ? 0 : (error.code as number), stdout, stderr });
      });
    });
}
