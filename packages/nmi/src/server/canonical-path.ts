/**
 * The one reading of a request target that NMI routes on and, for proxied routes, sends upstream byte for byte.
 *
 * Why it exists: NMI used to classify the raw path and proxy anything it did not recognise through a WHATWG URL,
 * which removes dot segments. `/x/../metadata/identity/oauth2/token?client_id=<any>` was "not the token route" to
 * NMI and a clean token request to the node's IMDS, so any pod could get any identity of the node. Now the path is
 * canonicalised once, classified on that, and only that canonical string ever goes on the wire (see
 * upstream-proxy.ts), so there is no second parser that could read the target differently.
 */

export interface CanonicalTarget {
  /**
   * The canonical path, letter case kept: absolute-form `scheme://authority` and fragment removed, `%XX` escapes of
   * unreserved characters decoded (other escapes kept, hex upper-cased), repeated `/` collapsed, dot segments
   * removed. A trailing `/` is kept.
   */
  path: string;
  /** `path` lower-cased, for comparisons (IMDS's paths are case-insensitive). */
  lower: string;
  /** The query string as sent, without `?`. */
  query: string;
  /**
   * The target holds a `\` or a still-encoded `/` or `\` (`%2F`, `%5C`): servers disagree on what those mean, so
   * such a target is never proxied.
   */
  ambiguous: boolean;
}

/** RFC 3986 §2.3 unreserved characters: ALPHA DIGIT - . _ ~ (their escapes mean the same as the character). */
function isUnreserved(code: number): boolean {
  return (
    (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a) || (code >= 0x30 && code <= 0x39) || code === 0x2d || code === 0x2e || code === 0x5f || code === 0x7e
  );
}

const ESCAPE = /%([0-9A-Fa-f]{2})/g;
const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i;

/** Decodes escapes of unreserved characters (so `%2e`, `%2E` are `.`); other escapes stay, upper-cased. */
export function decodeUnreserved(path: string): string {
  if (!path.includes("%")) return path;
  return path.replace(ESCAPE, (_m, hex: string) => {
    const code = Number.parseInt(hex, 16);
    return isUnreserved(code) ? String.fromCharCode(code) : `%${hex.toUpperCase()}`;
  });
}

/**
 * Repeated `/` collapsed, then `.` and `..` segments removed (RFC 3986 §5.2.4; `..` at the root stays at the root).
 * Empty segments go first, as Go's `path.Clean` (and so aad-pod-identity v1.8's ServeMux) does: `/a//../b` is `/b`.
 * `;params` are part of their segment, so `..;x` is an ordinary segment, not a dot segment.
 */
export function removeDotSegments(path: string): string {
  const raw = path.split("/");
  const out: string[] = [];
  for (const segment of raw) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") out.pop();
    else out.push(segment);
  }
  const last = raw[raw.length - 1];
  const trailing = raw.length > 1 && (last === "" || last === "." || last === "..") && out.length > 0;
  return `/${out.join("/")}${trailing ? "/" : ""}`;
}

/** Splits and canonicalises a request target as sent on the request line (origin-, absolute- or asterisk-form). */
export function canonicalizeTarget(rawTarget: string): CanonicalTarget {
  let target = rawTarget;
  if (!target.startsWith("/")) {
    // Absolute-form keeps only its path: NMI talks to its configured upstream, never to a host the client names.
    const authority = ABSOLUTE_FORM.exec(target);
    target = authority !== null ? target.slice(authority[0].length) : target;
    if (!target.startsWith("/")) target = `/${target}`;
  }
  const hash = target.indexOf("#");
  if (hash >= 0) target = target.slice(0, hash);
  const q = target.indexOf("?");
  const rawPath = q >= 0 ? target.slice(0, q) : target;
  const query = q >= 0 ? target.slice(q + 1) : "";
  const decoded = decodeUnreserved(rawPath);
  const ambiguous = decoded.includes("\\") || decoded.includes("%2F") || decoded.includes("%5C");
  const path = removeDotSegments(decoded);
  return { path, lower: path.toLowerCase(), query, ambiguous };
}
