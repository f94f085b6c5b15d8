import { LRUCache } from "lru-cache";
import type { AccessToken } from "@azure/core-auth";
import type { UpstreamToken } from "./parse-token-response";

/** What a cache lookup found, from the caller's point of view. */
export type CacheLookup =
  | { state: "fresh"; token: AccessToken }
  /** Valid, but inside the refresh window: serve it and refresh in the background. */
  | { state: "stale"; token: AccessToken }
  | { state: "missing" };

export interface TokenCacheSettings {
  maxEntries: number;
  refreshWindowMs: number;
  /** A token closer than this to expiry counts as missing. */
  expirySkewMs: number;
  now: () => number;
}

/**
 * Tokens per (identity selector, resource). Holds only successes: a failure is never remembered, so a
 * transient outage can never turn into a pod that stays broken (azure-sdk-for-js#11463).
 */
export class TokenCache {
  private readonly entries: LRUCache<string, AccessToken>;

  constructor(private readonly settings: TokenCacheSettings) {
    this.entries = new LRUCache<string, AccessToken>({ max: settings.maxEntries });
  }

  static key(selector: string, resource: string): string {
    return `${selector}\u0000${resource}`;
  }

  lookup(key: string): CacheLookup {
    const token = this.entries.get(key);
    if (token === undefined) return { state: "missing" };
    const now = this.settings.now();
    if (now >= token.expiresOnTimestamp - this.settings.expirySkewMs) {
      this.entries.delete(key);
      return { state: "missing" };
    }
    return now >= token.refreshAfterTimestamp! ? { state: "stale", token } : { state: "fresh", token };
  }

  /**
   * Stores a token with its refresh time: min(half-life, expiry − window). A token shorter than the window
   * would otherwise be due for refresh the moment it arrives, so it falls back to its half-life.
   */
  store(key: string, upstream: UpstreamToken): AccessToken {
    const receivedAt = this.settings.now();
    const halfLife = receivedAt + (upstream.expiresOnTimestamp - receivedAt) / 2;
    const windowStart = upstream.expiresOnTimestamp - this.settings.refreshWindowMs;
    const refreshAfterTimestamp = Math.floor(windowStart > receivedAt ? Math.min(halfLife, windowStart) : halfLife);
    const token: AccessToken = {
      token: upstream.token,
      expiresOnTimestamp: upstream.expiresOnTimestamp,
      refreshAfterTimestamp,
      tokenType: "Bearer",
    };
    this.entries.set(key, token);
    return token;
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
