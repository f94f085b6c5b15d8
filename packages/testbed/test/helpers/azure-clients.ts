import { Agent as HttpsAgent } from "node:https";
import type { PipelinePolicy } from "@azure/core-rest-pipeline";
import { Agent, request, type Dispatcher } from "undici";
import type { AzureCloud } from "../../src/index";

/**
 * Makes an Azure SDK client trust the testbed CA for its requests (TLS verification stays on):
 * every request of the pipeline goes through an agent that knows the CA.
 */
export function trustCa(caPem: string): { policy: PipelinePolicy; position: "perCall" } {
  const agent = new HttpsAgent({ ca: caPem, keepAlive: false });
  return {
    position: "perCall",
    policy: {
      name: "testbedTrustCa",
      sendRequest: (req, next) => {
        req.agent = agent;
        return next(req);
      },
    },
  };
}

/** An undici dispatcher that trusts only the testbed CA. */
export function caAgent(caPem: string): Agent {
  return new Agent({ connect: { ca: caPem } });
}

export interface JsonResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  text: string;
}

/** One HTTP call with undici; the body is parsed as JSON when it is JSON. */
export async function call(
  url: string,
  options: { method?: Dispatcher.HttpMethod; headers?: Record<string, string>; body?: string; dispatcher?: Dispatcher } = {},
): Promise<JsonResponse> {
  const res = await request(url, { method: options.method ?? "GET", headers: options.headers, body: options.body, dispatcher: options.dispatcher });
  const text = await res.body.text();
  let body: unknown;
  try {
    body = text.length > 0 ? JSON.parse(text) : undefined;
  } catch {
    // Not JSON (e.g. an empty 204 or a plain-text error): tests look at `text`.
  }
  return { status: res.statusCode, headers: res.headers, body, text };
}

/** A bearer token for ARM as a service principal of the cloud would get from Entra. */
export async function armToken(cloud: AzureCloud, audience = "https://management.azure.com/"): Promise<string> {
  const { token } = await cloud.tokenIssuer.issue({ audience, tenantId: cloud.tenantId, objectId: "00000000-0000-0000-0000-00000000a11c", appId: "00000000-0000-0000-0000-0000000000a1" });
  return token;
}
