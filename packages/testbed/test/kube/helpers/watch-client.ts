import type { KubeApiServer } from "../../../src/kube/kube-api-server";

export interface WireEvent {
  type: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  object: any;
}

/** A raw watch connection that collects newline-delimited events. */
export class RawWatch {
  readonly events: WireEvent[] = [];
  status = 0;
  ended = false;
  #controller = new AbortController();
  #waiters: Array<() => void> = [];

  static async open(server: KubeApiServer, path: string): Promise<RawWatch> {
    const w = new RawWatch();
    const res = await fetch(`${server.url}${path}`, { signal: w.#controller.signal });
    w.status = res.status;
    void w.#pump(res);
    return w;
  }

  async #pump(res: Response): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          if (line.trim()) this.events.push(JSON.parse(line) as WireEvent);
          this.#notify();
        }
      }
    } catch {
      // aborted or reset: the stream is over either way
    }
    this.ended = true;
    this.#notify();
  }

  #notify(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Resolves when `predicate` holds, or rejects after the deadline. */
  async until(predicate: (w: RawWatch) => boolean, what: string, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this)) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`timed out waiting for ${what}; events: ${JSON.stringify(this.events.map((e) => [e.type, e.object?.metadata?.name]))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, remaining);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async count(n: number): Promise<WireEvent[]> {
    await this.until((w) => w.events.length >= n, `${n} events`);
    return this.events.slice(0, n);
  }

  summary(): Array<[string, string | undefined]> {
    return this.events.map((e) => [e.type, e.object?.metadata?.name]);
  }

  close(): void {
    this.#controller.abort();
  }
}
