import type { IncomingMessage } from "node:http";

/** The raw bearer token of a request, or undefined when the header is missing or not Bearer. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (header === undefined) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}
