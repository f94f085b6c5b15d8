import type { IncomingMessage, ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { IDENTITY_TYPE, namespaceOf, nameOf, type IdentitySelector } from "@podidentity/api";
import type { Logger } from "pino";
import type { NmiConfig } from "../config";
import { NMI_ERROR_CODE, NmiError, UpstreamRefusalError, redactId } from "../errors";
import type { Pod } from "../kube-objects";
import type { IdentityResolver, ResolvedIdentity, Resolution } from "../identity/identity-resolver";
import type { PodCache, PodLookup } from "../pods/pod-cache";
import { IdentityNotFoundTracker } from "../token/identity-not-found-tracker";
import type { TokenCache } from "../token/token-cache";
import { objectIdOfToken, type AcquiredToken } from "../token/token-source";
import type { UpstreamLimiter } from "../token/upstream-limiter";
import { sendJson, sendJsonText, tokenJson } from "./http-response";
import type { ParsedRequestTarget } from "./request-route";
import type { UpstreamProxy } from "./upstream-proxy";

export interface TokenHandlerOptions {
  config: NmiConfig;
  pods: PodCache;
  resolver: IdentityResolver;
  tokens: TokenCache;
  proxy: UpstreamProxy;
  limiter: UpstreamLimiter;
  logger: Logger;
  now: () => number;
  /** Addresses that are the node itself. */
  isNodeAddress: (ip: string) => boolean;
  /** Managed mode: since when IMDS has answered "Identity not found" per identity (created when omitted). */
  notFound?: IdentityNotFoundTracker;
}

/** Whether the client went away, as a signal created on first use (see NmiServer's ClientGone). */
export interface ClientSignal {
  readonly signal: AbortSignal;
}

/** `::ffff:10.0.0.1` → `10.0.0.1`, so IPv4 pods match whatever the listener's family. */
export function normalizeAddress(address: string | undefined): string {
  if (address === undefined) return "";
  return address.startsWith("::ffff:") ? address.slice(7) : address;
}

function selectorOf(params: URLSearchParams): IdentitySelector {
  const get = (k: string): string | undefined => params.get(k)?.trim() || undefined;
  return { clientId: get("client_id"), resourceId: get("msi_res_id") ?? get("mi_res_id"), objectId: get("object_id") };
}

function requireResource(params: URLSearchParams): string {
  const resource = params.get("resource")?.trim();
  if (!resource) throw new NmiError(400, NMI_ERROR_CODE.InvalidRequest, "parameter resource cannot be empty");
  return resource;
}

/**
 * The token route and `/host/token`: source IP → pod (pod cache) → identity (resolver, may hold while the
 * assignment completes) → token (cache, upstream on a miss) → IMDS JSON. Exception pods are passed to IMDS
 * untouched. Every refusal is an NmiError; the server turns it into the answer.
 */
export class TokenHandler {
  readonly #o: TokenHandlerOptions;
  readonly #debug: boolean;
  /** The serialised answer per cached token list, for the current second (expires_in counts seconds). */
  readonly #bodies = new WeakMap<AcquiredToken[], { second: number; body: string }>();

  readonly #notFound: IdentityNotFoundTracker | undefined;

  constructor(options: TokenHandlerOptions) {
    this.#o = options;
    this.#notFound = options.config.operationMode === "managed" ? (options.notFound ?? new IdentityNotFoundTracker()) : undefined;
    this.#debug = options.logger.isLevelEnabled("debug");
  }

  /** Which pod got which identity (client ID redacted to its first and last 4 characters; never the token). */
  #logServed(pod: Pod, identity: ResolvedIdentity["identity"], resource: string, cache: "hit" | "acquired"): void {
    if (!this.#debug) return;
    this.#o.logger.debug(
      { pod: `${namespaceOf(pod)}/${nameOf(pod)}`, identity: `${namespaceOf(identity)}/${nameOf(identity)}`, clientId: redactId(identity.spec.clientID), resource, cache },
      "token served",
    );
  }

  /**
   * `GET /metadata/identity/oauth2/token`. Answers synchronously when everything is cached (returns undefined: no
   * promise, no microtask — measurable at NMI's request rates), else returns the promise of the slow path.
   * Refusals are thrown (synchronously or through the promise).
   */
  handleToken(req: IncomingMessage, res: ServerResponse, target: ParsedRequestTarget, gone: ClientSignal): Promise<void> | undefined {
    const { config } = this.#o;
    if (req.method !== "GET" && req.method !== "HEAD") {
      throw new NmiError(405, NMI_ERROR_CODE.InvalidRequest, `method ${req.method ?? ""} is not supported on the token endpoint; use GET`, { headers: { allow: "GET" } });
    }
    if (config.metadataHeaderRequired && String(req.headers["metadata"] ?? "").toLowerCase() !== "true") {
      throw new NmiError(400, NMI_ERROR_CODE.InvalidRequest, "Required metadata header not specified");
    }
    const resource = requireResource(target.params);
    const ip = normalizeAddress(req.socket.remoteAddress);
    if (ip === "") throw new NmiError(400, NMI_ERROR_CODE.InvalidRequest, "the request's source address is unknown");
    if (this.#o.isNodeAddress(ip)) {
      throw new NmiError(403, NMI_ERROR_CODE.HostNetwork, `requests from the node itself (${ip}) get no pod identity; hostNetwork pods and node processes are not served by NMI`);
    }
    const selector = selectorOf(target.params);
    // The hot path — a known pod, a settled identity, a cached token — answers without a single await.
    const known = this.#o.pods.lookup(ip);
    if (known.kind === "pod") {
      const now = this.#o.resolver.resolveNow(known.pod, selector);
      if (now?.kind === "identities" && now.objectId === undefined && now.candidates[0] !== undefined) {
        const tokens = this.#o.tokens.peek(now.candidates[0].identity, resource);
        if (tokens !== undefined) {
          sendJsonText(res, 200, this.#body(tokens));
          this.#logServed(known.pod, now.candidates[0].identity, resource, "hit");
          return undefined;
        }
      }
    }
    return this.#tokenSlow(req, res, target, gone, ip, resource, selector, known);
  }

  /** The token route when something is not cached: waits for the pod, the assignment, the upstream token. */
  async #tokenSlow(
    req: IncomingMessage,
    res: ServerResponse,
    target: ParsedRequestTarget,
    gone: ClientSignal,
    ip: string,
    resource: string,
    selector: IdentitySelector,
    known: PodLookup,
  ): Promise<void> {
    const { config } = this.#o;
    const signal = gone.signal;
    const found = known.kind !== "unknown" ? known : await this.#o.pods.waitFor(ip, config.podWaitMs, signal);
    if (found.kind === "host-network") {
      throw new NmiError(403, NMI_ERROR_CODE.HostNetwork, `pod ${namespaceOf(found.pod)}/${nameOf(found.pod)} uses hostNetwork; NMI serves no identity to hostNetwork pods`);
    }
    if (found.kind === "unknown") {
      throw new NmiError(503, NMI_ERROR_CODE.PodUnknown, `no pod on node ${config.nodeName} has IP ${ip} (yet); retry shortly`, {
        retryAfterSeconds: config.retryAfterSeconds,
      });
    }
    const deadline = performance.now() + config.waitForAssignmentMs;
    const resolution = await this.#o.resolver.resolve(found.pod, selector, config.waitForAssignmentMs, signal);
    if (resolution.kind === "exception") {
      this.#o.logger.debug({ pod: `${namespaceOf(found.pod)}/${nameOf(found.pod)}`, exception: resolution.exception }, "exception pod passed through to IMDS");
      await this.#o.limiter.run(() => this.#o.proxy.forward(req, res, `${target.path}${target.query ? `?${target.query}` : ""}`, signal));
      return;
    }
    const { tokens, identity } = await this.#tokensFor(found.pod, resolution, resource, deadline, signal);
    sendJsonText(res, 200, this.#body(tokens));
    this.#logServed(found.pod, identity.identity, resource, "acquired");
  }

  /** IMDS's JSON for the tokens: one object, or an array for a multi-tenant service principal (v1.8). */
  #body(tokens: AcquiredToken[]): string {
    const nowMs = this.#o.now();
    const second = Math.floor(nowMs / 1000);
    const cached = this.#bodies.get(tokens);
    if (cached !== undefined && cached.second === second) return cached.body;
    const body = JSON.stringify(tokens.length === 1 ? tokenJson(tokens[0]!, nowMs) : tokens.map((t) => tokenJson(t, nowMs)));
    this.#bodies.set(tokens, { second, body });
    return body;
  }

  /** `/host/token` (headers `podname`, `podns`; only from 127.0.0.1): `{"token":{…},"clientid":"…"}`. */
  async handleHostToken(req: IncomingMessage, res: ServerResponse, target: ParsedRequestTarget, gone: ClientSignal): Promise<void> {
    const ip = normalizeAddress(req.socket.remoteAddress);
    if (ip !== "127.0.0.1") {
      throw new NmiError(403, NMI_ERROR_CODE.Forbidden, "/host/token answers only requests from 127.0.0.1 on the node");
    }
    const podName = String(req.headers["podname"] ?? "").trim();
    const podNamespace = String(req.headers["podns"] ?? "").trim();
    if (podName === "" || podNamespace === "") {
      throw new NmiError(400, NMI_ERROR_CODE.InvalidRequest, "missing 'podname' and 'podns' from request header");
    }
    const resource = requireResource(target.params);
    const signal = gone.signal;
    const pod = this.#o.pods.informer.get(`${podNamespace}/${podName}`);
    if (pod === undefined) {
      throw new NmiError(503, NMI_ERROR_CODE.PodUnknown, `pod ${podNamespace}/${podName} is not (yet) known on node ${this.#o.config.nodeName}`, {
        retryAfterSeconds: this.#o.config.retryAfterSeconds,
      });
    }
    const deadline = performance.now() + this.#o.config.waitForAssignmentMs;
    const resolution = await this.#o.resolver.resolve(pod, selectorOf(target.params), this.#o.config.waitForAssignmentMs, signal);
    if (resolution.kind === "exception") {
      throw new NmiError(403, NMI_ERROR_CODE.NoBinding, `pod ${podNamespace}/${podName} matches AzurePodIdentityException ${resolution.exception}; it uses the node's IMDS directly`);
    }
    // Anything on the node's loopback can name any pod here, so a service principal's secret-backed token (types 1
    // and 2) is handed out only when the operator allows it; user-assigned identities stay as v1.8 served them.
    const candidates = this.#o.config.hostTokenServicePrincipals
      ? resolution.candidates
      : resolution.candidates.filter((c) => c.identity.spec.type === IDENTITY_TYPE.UserAssignedMSI);
    if (candidates.length === 0) {
      throw new NmiError(
        403,
        NMI_ERROR_CODE.Forbidden,
        `pod ${podNamespace}/${podName} is bound to a service principal; /host/token serves service principals only with --host-token-service-principals=true`,
      );
    }
    const { tokens, identity } = await this.#tokensFor(pod, { ...resolution, candidates }, resource, deadline, signal);
    sendJson(res, 200, { token: tokenJson(tokens[0]!, this.#o.now()), clientid: identity.identity.spec.clientID ?? "" });
  }

  async #tokensFor(
    pod: Pod,
    resolution: Extract<Resolution, { kind: "identities" }>,
    resource: string,
    deadline: number,
    signal: AbortSignal,
  ): Promise<{ tokens: AcquiredToken[]; identity: ResolvedIdentity }> {
    const { candidates, objectId } = resolution;
    if (objectId === undefined) {
      const identity = candidates[0]!;
      return { tokens: await this.#withGrace(identity, resource, deadline, signal), identity };
    }
    for (const identity of candidates) {
      const tokens = await this.#withGrace(identity, resource, deadline, signal);
      if (objectIdOfToken(tokens[0]!.accessToken)?.toLowerCase() === objectId.toLowerCase()) return { tokens, identity };
    }
    throw new NmiError(403, NMI_ERROR_CODE.NotBound, `pod ${namespaceOf(pod)}/${nameOf(pod)} asked for object_id ${redactId(objectId)}, which none of its identities has`);
  }

  /**
   * The token, where IMDS's "Identity not found" shortly after the assignment became Assigned means the
   * assignment has not reached this node's IMDS yet: retried with backoff until the request's deadline, then
   * 503 podidentity_pending — not a 400 the SDK would treat as final.
   */
  async #withGrace(c: ResolvedIdentity, resource: string, deadline: number, signal: AbortSignal): Promise<AcquiredToken[]> {
    const { config } = this.#o;
    const managed = config.operationMode === "managed";
    const key = managed ? notFoundKey(c) : "";
    let delayMs = 100;
    for (;;) {
      try {
        const tokens = await this.#o.tokens.get(c.identity, resource);
        if (managed) this.#notFound?.found(key);
        return tokens;
      } catch (error) {
        const notFound = error instanceof UpstreamRefusalError && error.isIdentityNotFound;
        let inGrace = c.assignedAtMs !== undefined && this.#o.now() - c.assignedAtMs < config.propagationGraceMs;
        if (managed && notFound) {
          // No MIC says when the identity was assigned: the grace runs from IMDS's first "not found" for it.
          const since = this.#notFound!.notFound(key, this.#o.now());
          inGrace = this.#o.now() - since < config.propagationGraceMs;
          if (!inGrace) throw managedNotAssigned(c, this.#o.now() - since);
        }
        if (!(notFound && inGrace)) throw error;
        if (performance.now() + delayMs >= deadline || signal.aborted) {
          throw new NmiError(503, NMI_ERROR_CODE.Pending, "the identity is assigned but the node's IMDS does not know it yet; retry shortly", {
            retryAfterSeconds: config.retryAfterSeconds,
          });
        }
        await sleep(delayMs, undefined, { signal }).catch(() => undefined);
        delayMs = Math.min(delayMs * 2, 2_000);
      }
    }
  }
}

/** The identity as it is now: editing its IDs restarts the managed-mode grace. */
function notFoundKey(c: ResolvedIdentity): string {
  const { spec } = c.identity;
  return `${namespaceOf(c.identity)}/${nameOf(c.identity)}|${spec.clientID ?? ""}|${spec.resourceID ?? ""}`.toLowerCase();
}

/** Managed mode: the node's IMDS still does not know the identity after the grace; nothing else will assign it. */
function managedNotAssigned(c: ResolvedIdentity, forMs: number): NmiError {
  const id = c.identity;
  return new NmiError(
    403,
    NMI_ERROR_CODE.AssignmentFailed,
    `the node's IMDS has answered "Identity not found" for AzureIdentity ${namespaceOf(id)}/${nameOf(id)} (client ID ${redactId(id.spec.clientID)}) ` +
      `for ${Math.round(forMs / 1000)} s, past the propagation grace; in managed mode nothing assigns identities: assign ${id.spec.resourceID ?? "it"} ` +
      "to this node's VM/VMSS (az vmss identity assign / az vm identity assign), or fix the AzureIdentity's clientID/resourceID",
  );
}
