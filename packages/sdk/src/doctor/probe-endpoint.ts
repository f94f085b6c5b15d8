import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { performance } from "node:perf_hooks";
import { IMDS_TOKEN_PATH, NMI_VERSION_HEADER } from "../imds-client";

export interface ProbeResult {
  reachable: boolean;
  /** "nmi" when the answer carries x-podidentity-nmi, "imds" for any other HTTP answer. */
  kind?: "nmi" | "imds";
  nmiVersion?: string;
  statusCode?: number;
  latencyMs: number;
  /** Why it is not reachable (network error code or message). */
  error?: string;
}

/**
 * One request to the token path without the Metadata header and without a resource: IMDS and NMI both answer
 * it at once with a 400 and fetch no token, so it measures reachability and latency without side effects
 * (the same probe @azure/identity's DefaultAzureCredential sends).
 */
export async function probeEndpoint(endpoint: URL, timeoutMs: number): Promise<ProbeResult> {
  const url = new URL(endpoint.href);
  url.pathname = `${url.pathname.replace(/\/+$/, "")}${IMDS_TOKEN_PATH}`;
  url.searchParams.set("api-version", "2018-02-01");
  const https = url.protocol === "https:";
  // A private Agent: the probe must not go through a proxy either, and must not keep the CLI alive.
  const agent = https ? new HttpsAgent() : new HttpAgent();
  const started = performance.now();
  try {
    const { statusCode, nmiVersion } = await new Promise<{ statusCode: number; nmiVersion: string | undefined }>((resolve, reject) => {
      const req = (https ? httpsRequest : httpRequest)(url, { method: "GET", agent, signal: AbortSignal.timeout(timeoutMs) }, (res) => {
        const header = res.headers[NMI_VERSION_HEADER];
        res.resume();
        resolve({ statusCode: res.statusCode ?? 0, nmiVersion: Array.isArray(header) ? header[0] : header });
      });
      req.on("error", reject);
      req.end();
    });
    return {
      reachable: true,
      kind: nmiVersion === undefined ? "imds" : "nmi",
      ...(nmiVersion === undefined ? {} : { nmiVersion }),
      statusCode,
      latencyMs: Math.round(performance.now() - started),
    };
  } catch (error) {
    const latencyMs = Math.round(performance.now() - started);
    const code = (error as { code?: unknown }).code;
    const name = (error as { name?: unknown; cause?: { name?: unknown } }).cause?.name ?? (error as { name?: unknown }).name;
    const reason = name === "TimeoutError" ? "timeout" : typeof code === "string" ? code : (error as Error).message;
    return { reachable: false, latencyMs, error: reason };
  } finally {
    agent.destroy();
  }
}
