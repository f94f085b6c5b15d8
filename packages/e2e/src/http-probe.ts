/**
 * Readiness probes: a plain HTTP GET (NMI's and MIC's probe ports), and polling a condition with a deadline for
 * the few things that have no event to wait on.
 */
import { request as httpRequest } from "node:http";

export async function pollUntil<T>(what: string, attempt: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 50): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await attempt();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (performance.now() > deadline) throw new Error(`${what}: not done after ${timeoutMs} ms${last ? ` (last error: ${(last as Error).message})` : ""}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** GET over plain HTTP (probes); resolves with status and body. */
export function httpGet(url: string, headers: Record<string, string> = {}, timeoutMs = 2_000): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: timed out`)));
    req.on("error", reject);
    req.end();
  });
}
