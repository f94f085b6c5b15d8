import { performance } from "node:perf_hooks";
import { PodIdentityCredential } from "../pod-identity-credential";
import { DEFAULT_POD_IDENTITY_CREDENTIAL_OPTIONS } from "../pod-identity-credential-options";
import { decodeJwtClaims } from "./decode-jwt-claims";
import type { TokenClaims } from "./decode-jwt-claims";
import { explainFailure } from "./explain-failure";
import type { FailureExplanation } from "./explain-failure";
import { probeEndpoint } from "./probe-endpoint";
import type { ProbeResult } from "./probe-endpoint";

export interface DoctorOptions {
  endpoint?: string;
  clientId?: string;
  resourceId?: string;
  objectId?: string;
  /** Resource to ask a token for. */
  resource: string;
  /** Overall budget for everything doctor does (probe, token request, retries): the last attempt is cut to fit. */
  timeoutMs: number;
  now?: () => number;
}

export interface DoctorReport {
  /** True only when a token was obtained. */
  ok: boolean;
  mode?: "imds" | "workload-identity";
  /** The IMDS endpoint or the workload identity settings used. */
  target?: string;
  identity: string;
  resource: string;
  /** imds mode only. */
  probe?: ProbeResult;
  token?: {
    obtainedInMs: number;
    expiresOn: string;
    timeLeftSeconds: number;
    /** Decoded without verification; undefined for an opaque (non-JWT) token. */
    claims?: TokenClaims;
  };
  failure?: FailureExplanation;
}

function identityOf(options: DoctorOptions): string {
  if (options.clientId) return `client_id=${options.clientId}`;
  if (options.resourceId) return `msi_res_id=${options.resourceId}`;
  if (options.objectId) return `object_id=${options.objectId}`;
  return process.env.AZURE_CLIENT_ID ? `client_id=${process.env.AZURE_CLIENT_ID} (from AZURE_CLIENT_ID)` : "default (system-assigned or the pod's only binding)";
}

/**
 * Checks what an app in this pod would hit: the endpoint (reachable? NMI or IMDS? latency), then a real token
 * request through PodIdentityCredential. Never returns the token, only its decoded claims.
 */
export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const now = options.now ?? Date.now;
  const startedAt = performance.now();
  // What is left of --timeout; never 0, which the options would refuse.
  const remainingMs = (): number => Math.max(1, Math.floor(options.timeoutMs - (performance.now() - startedAt)));
  const report: DoctorReport = { ok: false, identity: identityOf(options), resource: options.resource };
  let credential: PodIdentityCredential;
  try {
    credential = new PodIdentityCredential({
      ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
      ...(options.clientId === undefined ? {} : { clientId: options.clientId }),
      ...(options.resourceId === undefined ? {} : { resourceId: options.resourceId }),
      ...(options.objectId === undefined ? {} : { objectId: options.objectId }),
      timeoutMs: Math.min(options.timeoutMs, DEFAULT_POD_IDENTITY_CREDENTIAL_OPTIONS.timeoutMs),
      retry: { maxElapsedMs: options.timeoutMs },
      now,
    });
  } catch (error) {
    report.failure = { code: "INVALID_OPTIONS", message: (error as Error).message, fix: "fix the command-line options or environment named above" };
    return report;
  }
  report.mode = credential.mode;
  report.target = credential.target;
  try {
    if (credential.mode === "imds") {
      // At most half of --timeout, so the token request keeps the larger share.
      report.probe = await probeEndpoint(new URL(credential.target), Math.min(Math.ceil(options.timeoutMs / 2), 5_000));
    }
    const started = performance.now();
    try {
      // The retry budget normally ends first; this cuts an attempt that would run past --timeout (the TIMEOUT
      // error keeps the last attempt's failure as its cause, so the explanation stays specific).
      const token = await credential.getToken(options.resource, { requestOptions: { timeout: remainingMs() } });
      const claims = decodeJwtClaims(token.token);
      report.ok = true;
      report.token = {
        obtainedInMs: Math.round(performance.now() - started),
        expiresOn: new Date(token.expiresOnTimestamp).toISOString(),
        timeLeftSeconds: Math.round((token.expiresOnTimestamp - now()) / 1000),
        ...(claims === undefined ? {} : { claims }),
      };
    } catch (error) {
      report.failure = explainFailure(error);
    }
    return report;
  } finally {
    await credential.close();
  }
}
