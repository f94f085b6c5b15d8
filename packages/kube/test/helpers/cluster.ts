import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { KubeApiServer, renderKubeconfig } from "@podidentity/testbed";
import { KubeClient, parseKubeConfig, type Clock, type KubeClientOptions, type TimerHandle } from "../../src/index";

/** The testbed's API server on loopback (plain HTTP), with bearer tokens mapped to users. */
export async function startKube(options: ConstructorParameters<typeof KubeApiServer>[0] = {}): Promise<KubeApiServer> {
  const kube = new KubeApiServer({ tokens: { "test-token": "tester" }, ...options });
  await kube.start();
  return kube;
}

export function clientFor(server: string, options: KubeClientOptions & { token?: string } = { token: "test-token" }): KubeClient {
  const { token, ...clientOptions } = options;
  const config = parseKubeConfig(renderKubeconfig({ server, ...(token !== undefined && { token }) }), { source: "test-kubeconfig", baseDir: "/" });
  return new KubeClient(config, clientOptions);
}

export function configMap(name: string, data: Record<string, string> = {}, namespace = "default"): Record<string, unknown> {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace }, data };
}

/** A tiny node:http server on loopback for what the emulator cannot do (torn writes, silence, odd answers). */
export async function rawServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; server: Server; requests: IncomingMessage[]; close(): Promise<void> }> {
  const requests: IncomingMessage[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    requests.push(req);
    handler(req, res);
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    requests,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A clock that records what was scheduled and fires timers only when told. */
export class StepClock implements Clock {
  nowMs = 0;
  readonly scheduled: number[] = [];
  readonly #timers = new Set<{ at: number; callback: () => void }>();

  now(): number {
    return this.nowMs;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    this.scheduled.push(ms);
    const timer = { at: this.nowMs + ms, callback };
    this.#timers.add(timer);
    return { clear: () => this.#timers.delete(timer) };
  }

  get pending(): number {
    return this.#timers.size;
  }

  /** Moves time to the earliest timer and fires it. */
  fireNext(): void {
    const next = [...this.#timers].sort((a, b) => a.at - b.at)[0];
    if (next === undefined) throw new Error("StepClock: no timer pending");
    this.#timers.delete(next);
    this.nowMs = next.at;
    next.callback();
  }
}
