import { canonicalizeTarget } from "./canonical-path";

/**
 * Which route a request takes, decided on the canonical path (canonical-path.ts) and nothing else:
 * - `token`: every spelling of `/metadata/identity/oauth2/token` (case, `%2e`, `//`, `./`, `x/../`, trailing `/`);
 *   answered by NMI for the calling pod, never proxied;
 * - `malformed-token`: looks like the token path but is not (v1.8's second route, e.g. backslashes) → 400;
 * - `identity`: anything else under `/metadata/identity/` (it is about the node's identities) → 403;
 * - `host-token`: `/host/token`;
 * - `metadata`: everything else, decided by the proxy allowlist (proxy-allowlist.ts), unknown paths → 404.
 */
export type RouteKind = "token" | "malformed-token" | "identity" | "host-token" | "metadata";

export interface ParsedRequestTarget {
  route: RouteKind;
  /** The canonical path: what NMI routed on and, when proxied, exactly what goes upstream. */
  path: string;
  /** `path` lower-cased. */
  lower: string;
  /** The query string as sent, without `?` (forwarded unchanged). */
  query: string;
  params: URLSearchParams;
  /** The target had a `\`, `%2F` or `%5C`: never proxied. */
  ambiguous: boolean;
}

const TOKEN_PATH = "/metadata/identity/oauth2/token";
// v1.8's second route: anything that looks like the token path but is not (backslashes, extra segments in
// between) is a 400, so a sloppy client learns its mistake and nothing token-like is ever proxied.
const MALFORMED_TOKEN = /^\/metadata[\\/]+identity(.*?)oauth2(.*?)token/i;

export function parseRequestTarget(rawUrl: string): ParsedRequestTarget {
  const { path, lower, query, ambiguous } = canonicalizeTarget(rawUrl);
  const params = new URLSearchParams(query);
  const bare = lower.length > 1 && lower.endsWith("/") ? lower.slice(0, -1) : lower;
  let route: RouteKind = "metadata";
  if (bare === TOKEN_PATH) route = "token";
  else if (MALFORMED_TOKEN.test(lower.replaceAll("%2f", "/").replaceAll("%5c", "\\"))) route = "malformed-token";
  else if (bare === "/metadata/identity" || bare.startsWith("/metadata/identity/")) route = "identity";
  else if (bare === "/host/token" || bare.startsWith("/host/token/")) route = "host-token";
  return { route, path, lower, query, params, ambiguous };
}
