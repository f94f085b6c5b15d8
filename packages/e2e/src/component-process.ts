/**
 * A podidentity daemon (NMI, MIC) running as a real process in a node's network namespace: its stdout/stderr are
 * drained line by line (a full pipe would stall it), kept for assertions — pino JSON lines parsed — and optionally
 * appended to a log file, and it can be waited on and stopped like a pod's container. A restarted component is a
 * new ComponentProcess on the same file: each instance's lines follow a `# <name> pid <pid> started <time>` line,
 * so no instance's log is lost.
 */
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createWriteStream, type WriteStream } from "node:fs";
import { createInterface } from "node:readline";

export interface LogLine {
  /** performance.now() when the line arrived. */
  at: number;
  text: string;
  /** The parsed line when it is JSON (pino), else undefined. */
  json: Record<string, unknown> | undefined;
}

type Waiter = { match: (line: LogLine) => boolean; resolve: (line: LogLine) => void };

export class ComponentProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly #waiters = new Set<Waiter>();
  readonly #file: WriteStream | undefined;

  constructor(name: string, child: ChildProcess, logFile?: string) {
    this.name = name;
    this.child = child;
    this.#file = logFile ? createWriteStream(logFile, { flags: "a" }) : undefined;
    this.#file?.write(`# ${name} pid ${child.pid ?? "?"} started ${new Date().toISOString()}\n`);
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on("line", (text) => this.#onLine(text));
    }
    this.exited = once(child, "exit").then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
    this.exited.then(() => this.#file?.end(), () => undefined);
  }

  #onLine(text: string): void {
    let json: Record<string, unknown> | undefined;
    if (text.startsWith("{")) {
      try {
        json = JSON.parse(text) as Record<string, unknown>;
      } catch {
        json = undefined;
      }
    }
    const line: LogLine = { at: performance.now(), text, json };
    this.lines.push(line);
    this.#file?.write(text + "\n");
    for (const w of [...this.#waiters]) {
      if (w.match(line)) {
        this.#waiters.delete(w);
        w.resolve(line);
      }
    }
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** JSON log lines whose `msg` is `msg`. */
  logs(msg: string): Record<string, unknown>[] {
    return this.lines.flatMap((l) => (l.json && l.json["msg"] === msg ? [l.json] : []));
  }

  /** Resolves with the first line (already seen or future) matching; rejects on timeout or exit. */
  waitForLine(what: string, match: (line: LogLine) => boolean, timeoutMs = 20_000): Promise<LogLine> {
    const seen = this.lines.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise<LogLine>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`${this.name}: no ${what} after ${timeoutMs} ms; last lines:\n${this.tail()}`)), timeoutMs);
      const waiter: Waiter = {
        match,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      const fail = (err: Error): void => {
        this.#waiters.delete(waiter);
        clearTimeout(timer);
        reject(err);
      };
      this.#waiters.add(waiter);
      void this.exited.then(({ code, signal }) => {
        if (this.#waiters.has(waiter)) fail(new Error(`${this.name} exited (${code ?? signal}) before ${what}; last lines:\n${this.tail()}`));
      });
    });
  }

  tail(n = 15): string {
    return this.lines.slice(-n).map((l) => `  ${l.text}`).join("\n");
  }

  /** SIGTERM (or `signal`), then SIGKILL after `graceMs`; resolves with how it exited. */
  async stop(signal: NodeJS.Signals = "SIGTERM", graceMs = 8_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) {
      this.child.kill(signal);
      const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
      const result = await this.exited;
      clearTimeout(timer);
      return result;
    }
    return this.exited;
  }
}
