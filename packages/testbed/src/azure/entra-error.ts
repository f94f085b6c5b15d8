import { randomUUID } from "node:crypto";
import { HttpError } from "./http";

/**
 * Entra's token-endpoint error: `{error, error_description: "AADSTSnnn: … Trace ID … Correlation ID
 * … Timestamp …", error_codes: [nnn], timestamp, trace_id, correlation_id, error_uri}`.
 */
export function entraError(statusCode: number, error: string, aadsts: number, message: string, nowMs: number, correlationId?: string): HttpError {
  const traceId = randomUUID();
  const correlation = correlationId ?? randomUUID();
  const timestamp = new Date(nowMs).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  return new HttpError(statusCode, {
    error,
    error_description: `AADSTS${aadsts}: ${message}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlation}\r\nTimestamp: ${timestamp}`,
    error_codes: [aadsts],
    timestamp,
    trace_id: traceId,
    correlation_id: correlation,
    error_uri: `https://login.microsoftonline.com/error?code=${aadsts}`,
  });
}
