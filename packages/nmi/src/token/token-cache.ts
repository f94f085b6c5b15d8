import { nameOf, namespaceOf, type AzureIdentity } from "@podidentity/api";
import { LRUCache } from "lru-cache";
import { identityKey } from "../identity/identity-store";
import type { AcquiredToken, TokenSource } from "./token-source";

export interface TokenCacheOptions {
  /** Picks the source for an identity (IMDS for type 0, Entra for types 1 and 2). */
  sourceFor: (identity: AzureIdentity) => TokenSource;
  now: () => number;
  enabled: boolean;
  maxEntries: number;
  /** Refresh starts at min(half-life, expiry − window). */
  refreshWindowMs: number;
  /** A cached token with less than this left is not handed out (the caller would get an expired token). */
  minRemainingMs?: number;
  /**
   * After a background refresh failed, the next one waits this long while the cached token is served: otherwise a
   * busy node would start a new upstream call on every lookup once the first refresh failed.
   */
  failedRefreshCooldownMs?: number;
  onLookup?: (result: "hit" | "miss" | "refresh") => void;
  onBackgroundError?: (error: unknown, identity: AzureIdentity) => void;
}

interface Entry {
  tokens: AcquiredToken[];
  expiresOnMs: number;
  /** When the next background refresh may start; moved on by a failed refresh (cooldown). */
  refreshAtMs: number;
  identityKey: string;
}

export const DEFAULT_FAILED_REFRESH_COOLDOWN_MS = 30_000;
const DEFAULT_MIN_REMAINING_MS = 30_000;

/**
 * When a token received at `receivedMs` is due for a background refresh: min(half-life, expiry − window). A token
 * shorter than the window would be due the moment it arrives — and again after every refresh, one upstream call per
 * lookup — so it falls back to its half-life, as the SDK's cache does.
 */
export function refreshDueMs(receivedMs: number, expiresOnMs: number, refreshWindowMs: number): number {
  const halfLife = receivedMs + (expiresOnMs - receivedMs) / 2;
  const windowStart = expiresOnMs - refreshWindowMs;
  return windowStart > receivedMs ? Math.min(halfLife, windowStart) : halfLife;
}

const fingerprints = new WeakMap<AzureIdentity, string>();

/** What decides a token: a changed client ID, tenant, type or secret reference is a different cache entry. */
function fingerprint(identity: AzureIdentity): string {
  let f = fingerprints.get(identity);
  if (f === undefined) {
    const s = identity.spec;
    const id = identityKey(namespaceOf(identity), nameOf(identity));
    f = `${id}|${JSON.stringify([s.type, s.clientID?.toLowerCase(), s.resourceID?.toLowerCase(), s.tenantID, s.clientPassword, s.auxiliaryTenantIDs, s.adEndpoint])}`;
    fingerprints.set(identity, f);
  }
  return f;
}

function normalizeResource(resource: string): string {
  return resource.trim().replace(/\/+$/, "").toLowerCase();
}

/**
 * Tokens per (identity, resource), so N pods using one identity cost one upstream call — v1.8 cached nothing and
 * a busy node spent IMDS's 20 requests/s budget on repeats. Refreshes ahead of expiry in the background, with
 * single-flight (concurrent misses share one call), and drops an identity's entries when the identity or a
 * binding naming it changes. Failures are never cached.
 */
export class TokenCache {
  readonly #o: TokenCacheOptions;
  readonly #entries: LRUCache<string, Entry>;
  readonly #flights = new Map<string, Promise<Entry>>();
  /** Bumped on invalidation, so a flight started before it does not store a stale answer. */
  readonly #generations = new Map<string, number>();

  constructor(options: TokenCacheOptions) {
    this.#o = options;
    this.#entries = new LRUCache<string, Entry>({ max: options.maxEntries });
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The cached tokens if there are usable ones (starting a background refresh when due), else undefined. */
  peek(identity: AzureIdentity, resource: string): AcquiredToken[] | undefined {
    if (!this.#o.enabled) return undefined;
    const key = `${fingerprint(identity)}|${normalizeResource(resource)}`;
    const now = this.#o.now();
    const entry = this.#entries.get(key);
    if (entry === undefined || entry.expiresOnMs - now <= (this.#o.minRemainingMs ?? DEFAULT_MIN_REMAINING_MS)) return undefined;
    if (now >= entry.refreshAtMs && !this.#flights.has(key)) {
      this.#o.onLookup?.("refresh");
      this.#flight(key, entry.identityKey, identity, resource).catch((e: unknown) => {
        // The cached token is still good: serve it, and try again only after the cooldown (never past expiry).
        entry.refreshAtMs = Math.min(this.#o.now() + (this.#o.failedRefreshCooldownMs ?? DEFAULT_FAILED_REFRESH_COOLDOWN_MS), entry.expiresOnMs);
        this.#o.onBackgroundError?.(e, identity);
      });
    } else {
      this.#o.onLookup?.("hit");
    }
    return entry.tokens;
  }

  async get(identity: AzureIdentity, resource: string): Promise<AcquiredToken[]> {
    const cached = this.peek(identity, resource);
    if (cached !== undefined) return cached;
    this.#o.onLookup?.("miss");
    if (!this.#o.enabled) return this.#o.sourceFor(identity).acquire(identity, resource);
    const key = `${fingerprint(identity)}|${normalizeResource(resource)}`;
    return (await this.#flight(key, identityKey(namespaceOf(identity), nameOf(identity)), identity, resource)).tokens;
  }

  /** Drops every entry of the identity `namespace/name`. */
  invalidateIdentity(key: string): void {
    this.#generations.set(key, (this.#generations.get(key) ?? 0) + 1);
    for (const [k, entry] of this.#entries.entries()) if (entry.identityKey === key) this.#entries.delete(k);
  }

  clear(): void {
    this.#entries.clear();
  }

  #flight(key: string, idKey: string, identity: AzureIdentity, resource: string): Promise<Entry> {
    const running = this.#flights.get(key);
    if (running !== undefined) return running;
    const generation = this.#generations.get(idKey) ?? 0;
    const flight = (async () => {
      try {
        const tokens = await this.#o.sourceFor(identity).acquire(identity, resource);
        const expiresOnMs = Math.min(...tokens.map((t) => t.expiresOnMs));
        const entry: Entry = { tokens, expiresOnMs, refreshAtMs: refreshDueMs(this.#o.now(), expiresOnMs, this.#o.refreshWindowMs), identityKey: idKey };
        if ((this.#generations.get(idKey) ?? 0) === generation) this.#entries.set(key, entry);
        return entry;
      } finally {
        this.#flights.delete(key);
      }
    })();
    this.#flights.set(key, flight);
    return flight;
  }
}
