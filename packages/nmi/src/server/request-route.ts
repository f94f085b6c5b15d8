/** Which of CONTRACT.md's routes a request takes. */
export type RouteKind = "token" | "malformed-token" | "host-token" | "instance" | "proxy";

export interface ParsedRequestTarget {
  route: RouteKind;
  /** The path as sent (percent-encoded, backslashes kept) and the query string without `?`. */
  path: string;
  query: string;
  params: URLSearchParams;
}

const TOKEN_REST = "/identity/oauth2/token";
// v1.8's second route: anything that looks like the token path but is not (e.g. backslashes, extra segments
// in between) is a 400 instead of being proxied, so a sloppy client never reaches the node's identity.
const MALFORMED_TOKEN = /^\/metadata[\\/]+identity(.*?)oauth2(.*?)token/i;

function safeDecode(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/**
 * Splits the raw request target without WHATWG URL parsing, which would turn backslashes into slashes and make
 * a malformed token path look valid. An absolute-form target (`GET http://host/path`) keeps only its path: NMI
 * proxies to its configured upstream, never to a host a client names.
 */
export function parseRequestTarget(rawUrl: string): ParsedRequestTarget {
  let target = rawUrl;
  if (!target.startsWith("/")) {
    const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*(.*)$/i.exec(target);
    target = m ? m[1] || "/" : `/${target}`;
  }
  const hash = target.indexOf("#");
  if (hash >= 0) target = target.slice(0, hash);
  const q = target.indexOf("?");
  const path = q >= 0 ? target.slice(0, q) : target;
  const query = q >= 0 ? target.slice(q + 1) : "";
  const params = new URLSearchParams(query);
  const slash = path.indexOf("/", 1);
  const first = slash > 0 ? path.slice(1, slash) : path.slice(1);
  const rest = slash > 0 ? path.slice(slash) : "";
  let route: RouteKind = "proxy";
  if (first.toLowerCase() === "metadata" && (rest === TOKEN_REST || rest === `${TOKEN_REST}/`)) route = "token";
  else if (MALFORMED_TOKEN.test(safeDecode(path))) route = "malformed-token";
  else if (path === "/host/token" || path.startsWith("/host/token/")) route = "host-token";
  else if (first.toLowerCase() === "metadata" && rest.toLowerCase().startsWith("/instance")) route = "instance";
  return { route, path, query, params };
}
