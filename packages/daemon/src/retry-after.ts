/**
 * The daemons' one Retry-After reader (MIC's ARM client). @podidentity/sdk keeps its own small copy
 * (retry-policy.ts parseRetryAfter): apps install the SDK, which must not depend on the daemons' packages.
 *
 * How long the server asked us to wait: `retry-after-ms` / `x-ms-retry-after-ms` (milliseconds), else
 * `Retry-After` as seconds or an HTTP date (v1.8 accepted both forms). Undefined when absent or unreadable.
 */
export function retryAfterMs(headers: Record<string, string | string[] | undefined>, nowMs: number): number | undefined {
  const first = (name: string): string | undefined => {
    const v = headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  for (const name of ["retry-after-ms", "x-ms-retry-after-ms"]) {
    const v = first(name);
    if (v !== undefined && /^\d+(\.\d+)?$/.test(v.trim())) return Math.ceil(Number(v));
  }
  const v = first("retry-after")?.trim();
  if (v === undefined || v === "") return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Math.ceil(Number(v) * 1000);
  const date = Date.parse(v);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMs);
}
