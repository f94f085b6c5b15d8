import { performance } from "node:perf_hooks";
import { Agent, request } from "undici";
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
  // A private Agent: the probe must not go through a proxy either, and must not keep the CLI alive.
  const dispatcher = new Agent({ connect: { timeout: timeoutMs } });
  const started = performance.now();
  try {
    const response = await request(url, { method: "GET", dispatcher, signal: AbortSignal.timeout(timeoutMs) });
    await response.body.dump();
    const latencyMs = Math.round(performance.now() - started);
    const header = response.headers[NMI_VERSION_HEADER];
    const nmiVersion = Array.isArray(header) ? header[0] : header;
    return {
      reachable: true,
      kind: nmiVersion === undefined ? "imds" : "nmi",
      ...(nmiVersion === undefined ? {} : { nmiVersion }),
      statusCode: response.statusCode,
      latencyMs,
    };
  } catch (error) {
    const latencyMs = Math.round(performance.now() - started);
    const code = (error as { code?: unknown }).code;
    const name = (error as { name?: unknown }).name;
    const reason = typeof code === "string" ? code : name === "TimeoutError" ? "timeout" : (error as Error).message;
    return { reachable: false, latencyMs, error: reason };
  } finally {
    await dispatcher.destroy();
  }
}
