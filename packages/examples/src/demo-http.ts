import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

export interface JsonAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

/**
 * One HTTP(S) request with a JSON or form body, the way MIC talks to Entra ID and ARM: TLS verified
 * against `ca` (the testbed CA), bounded by `timeoutMs`, answer parsed as JSON when it is JSON.
 */
export function requestJson(
  url: string,
  options: { method?: string; headers?: Record<string, string>; json?: unknown; form?: Record<string, string>; ca?: string; timeoutMs?: number } = {},
): Promise<JsonAnswer> {
  const target = new URL(url);
  const headers: Record<string, string> = { accept: "application/json", ...options.headers };
  let payload: string | undefined;
  if (options.json !== undefined) {
    payload = JSON.stringify(options.json);
    headers["content-type"] = "application/json";
  } else if (options.form !== undefined) {
    payload = new URLSearchParams(options.form).toString();
    headers["content-type"] = "application/x-www-form-urlencoded";
  }
  if (payload !== undefined) headers["content-length"] = String(Buffer.byteLength(payload));
  const send = target.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(target, { method: options.method ?? "GET", headers, ca: options.ca, timeout: options.timeoutMs ?? 10_000, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let body: unknown = text;
        try {
          body = text.length > 0 ? JSON.parse(text) : undefined;
        } catch {
          // Not JSON: callers get the text.
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`${options.method ?? "GET"} ${target.origin}${target.pathname} timed out`)));
    req.on("error", reject);
    req.end(payload);
  });
}
