import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";

export interface ConnectionGuardOptions {
  /** Open connections at most; at the cap a new one evicts the connection idle the longest. */
  maxConnections: number;
  /** A connection that has not completed a request head within this time after connecting is closed. */
  idleConnectionTimeoutMs: number;
  /** Written to a connection refused because every open connection has a request in progress. */
  refusal: () => string;
  /** Called for every connection closed by the guard. */
  onClose?: (reason: ConnectionCloseReason) => void;
}

export type ConnectionCloseReason = "idle" | "evicted" | "refused";

interface Tracked {
  /** Requests received and not yet answered (pipelining can make it > 1). */
  inFlight: number;
  /** Whether a request head was ever completed on it. */
  used: boolean;
  idleTimer: NodeJS.Timeout | undefined;
}

/**
 * Bounds NMI's listener in connections, not just in requests.
 *
 * Node closes a connection that started a request and stalls (headersTimeout, requestTimeout) or that idles after
 * an answer (keepAliveTimeout), but not one that never sends a byte: issue 12 held 3,000 such connections open
 * indefinitely. The guard closes those after `idleConnectionTimeoutMs`.
 *
 * The cap: `server.maxConnections` would refuse new connections once the cap is reached, so whoever holds the cap
 * with idle connections locks every pod out. Instead, a connection arriving at the cap evicts the connection that
 * has been idle the longest — no request in progress: never sent one, sent part of a head, or kept alive between
 * requests. A legitimate client sends its request right after connecting and is then not evictable, so an
 * attacker would have to open `maxConnections` new connections within that instant to push it out; idle
 * connections cost it nothing to lose (a kept-alive client reconnects). Only when every open connection has a
 * request in progress is the newcomer refused (503 + Retry-After) — that is NMI being busy, not being squatted.
 */
export class ConnectionGuard {
  readonly #o: ConnectionGuardOptions;
  readonly #tracked = new Map<Socket, Tracked>();
  /** Connections with no request in progress, longest idle first (a Set iterates in insertion order). */
  readonly #idle = new Set<Socket>();

  constructor(server: Server, options: ConnectionGuardOptions) {
    if (!Number.isInteger(options.maxConnections) || options.maxConnections < 1) {
      throw new RangeError(`ConnectionGuard: maxConnections must be a positive integer, got ${options.maxConnections}`);
    }
    if (!(options.idleConnectionTimeoutMs > 0)) {
      throw new RangeError(`ConnectionGuard: idleConnectionTimeoutMs must be positive, got ${options.idleConnectionTimeoutMs}`);
    }
    this.#o = options;
    server.on("connection", (socket: Socket) => this.#onConnection(socket));
    server.on("request", (req: IncomingMessage, res: ServerResponse) => this.#onRequest(req, res));
  }

  /** Connections open now. */
  get open(): number {
    return this.#tracked.size;
  }

  #onConnection(socket: Socket): void {
    if (this.#tracked.size >= this.#o.maxConnections) {
      const victim = this.#idle.values().next().value;
      if (victim === undefined) {
        this.#o.onClose?.("refused");
        socket.on("error", () => undefined);
        // Flushes the answer, then closes; the parser never sees a request on it.
        socket.end(this.#o.refusal());
        socket.destroySoon();
        return;
      }
      this.#forget(victim);
      victim.destroy();
      this.#o.onClose?.("evicted");
    }
    const t: Tracked = { inFlight: 0, used: false, idleTimer: undefined };
    t.idleTimer = setTimeout(() => {
      if (t.used || socket.destroyed) return;
      this.#forget(socket);
      socket.destroy();
      this.#o.onClose?.("idle");
    }, this.#o.idleConnectionTimeoutMs);
    t.idleTimer.unref();
    this.#tracked.set(socket, t);
    this.#idle.add(socket);
    socket.once("close", () => this.#forget(socket));
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket;
    const t = this.#tracked.get(socket);
    if (t === undefined) return;
    if (!t.used) {
      t.used = true;
      clearTimeout(t.idleTimer);
      t.idleTimer = undefined;
    }
    t.inFlight++;
    this.#idle.delete(socket);
    res.once("close", () => {
      t.inFlight--;
      // Re-inserted at the end: the longest idle stays first in line for eviction.
      if (t.inFlight === 0 && this.#tracked.has(socket) && !socket.destroyed) this.#idle.add(socket);
    });
  }

  #forget(socket: Socket): void {
    const t = this.#tracked.get(socket);
    if (t === undefined) return;
    clearTimeout(t.idleTimer);
    this.#tracked.delete(socket);
    this.#idle.delete(socket);
  }
}
