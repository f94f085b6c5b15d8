// What every example app shares: required env vars, one-line errors, exit codes.

/** Reads a required environment variable, or exits with a message naming it. */
export function requireEnv(env: NodeJS.ProcessEnv, name: string, example: string): string {
  const value = env[name];
  if (value === undefined || value.trim() === "") {
    throw new ExampleError(`${name} is not set (e.g. ${name}=${example})`);
  }
  return value.trim();
}

/** A failure the app explains in one line; anything else is a bug and gets a stack. */
export class ExampleError extends Error {
  override readonly name = "ExampleError";
}

/** What an example's setup returns: one round of its work, and how to release what it holds. */
export interface ExampleApp {
  run(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Runs an example: `setup` once (read env, create the ONE credential and the clients), then `run` once —
 * or every EXAMPLE_INTERVAL_SECONDS until SIGTERM/SIGINT, the way a Deployment's long-running app reuses
 * its credential (later rounds are served from the credential's cache). Exit code 0 on success or on a
 * stop signal; on failure one `error: …` line with the cause chain (never a token) and exit code 1, so a
 * pod's logs and restart count tell what went wrong.
 */
export function runExample(setup: () => Promise<ExampleApp>, env: NodeJS.ProcessEnv = process.env): void {
  void (async () => {
    let app: ExampleApp | undefined;
    try {
      const interval = env["EXAMPLE_INTERVAL_SECONDS"];
      const intervalMs = interval === undefined || interval === "" ? undefined : Number(interval) * 1000;
      if (intervalMs !== undefined && !(intervalMs > 0 && Number.isFinite(intervalMs))) {
        throw new ExampleError(`EXAMPLE_INTERVAL_SECONDS must be a positive number of seconds, got "${interval}"`);
      }
      app = await setup();
      await app.run();
      if (intervalMs !== undefined) {
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        process.once("SIGTERM", onSignal);
        process.once("SIGINT", onSignal);
        while (!stop.signal.aborted) {
          await sleep(intervalMs, stop.signal);
          if (!stop.signal.aborted) await app.run();
        }
      }
      await app.close();
      process.exit(0);
    } catch (error) {
      console.error(`error: ${describeError(error)}`);
      await app?.close().catch(() => undefined);
      process.exit(1);
    }
  })();
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

/** One line per error in the cause chain; AggregateError (tedious) members included. */
export function describeError(error: unknown): string {
  const parts: string[] = [];
  const seen = new Set<unknown>();
  const visit = (e: unknown, depth: number): void => {
    if (e === undefined || e === null || seen.has(e) || depth > 4) return;
    seen.add(e);
    if (e instanceof AggregateError) {
      for (const member of e.errors) visit(member, depth + 1);
      if (e.message !== "") parts.push(e.message);
    } else if (e instanceof Error) {
      const code = (e as { code?: unknown }).code;
      const status = (e as { statusCode?: unknown }).statusCode;
      const tags = [typeof status === "number" ? String(status) : "", typeof code === "string" ? code : ""].filter((t) => t !== "");
      parts.push(`${e.name}${tags.length > 0 ? ` [${tags.join(" ")}]` : ""}: ${e.message}`);
      visit(e.cause, depth + 1);
    } else {
      parts.push(String(e));
    }
  };
  visit(error, 0);
  return parts.join("\n  caused by: ");
}

/** The status and code of an Azure SDK RestError (an HTTP answer), else undefined (a credential or network failure). */
export function restError(error: unknown): { statusCode: number; code: string } | undefined {
  if (!(error instanceof Error) || error.name !== "RestError") return undefined;
  const { statusCode, code } = error as { statusCode?: unknown; code?: unknown };
  return typeof statusCode === "number" ? { statusCode, code: typeof code === "string" ? code : "" } : undefined;
}
