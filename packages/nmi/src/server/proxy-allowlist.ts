/**
 * What NMI passes to the node's IMDS: an explicit list of (canonical path, method) pairs, each with a decision.
 * Everything not listed is answered by NMI itself (404, or 405 for a listed path with another method), so a new
 * IMDS endpoint — or a spelling of one NMI did not think of — is closed until someone decides to open it.
 * The reasons for each entry are in docs/contract.md ("Proxy allowlist").
 */

/** Routes closed by default that `--allow-imds-routes` can open. */
export const IMDS_ROUTE_OPT_INS = ["user-data", "attested-document", "scheduled-events-ack"] as const;
export type ImdsRouteOptIn = (typeof IMDS_ROUTE_OPT_INS)[number];

/** A method's verdict on a listed path: proxied, or refused unless the named opt-in is given. */
type Verdict = "proxy" | ImdsRouteOptIn;

interface AllowlistEntry {
  /** Metric/route label. */
  name: string;
  /** Lower-case canonical path without a trailing `/`. */
  path: string;
  /** Whether paths below `path` belong to this entry too. */
  subtree: boolean;
  /** Subject to `--block-instance-metadata`. */
  instanceMetadata: boolean;
  methods: Readonly<Record<string, Verdict>>;
}

/** Most specific first: the first entry whose path matches decides. */
const ALLOWLIST: readonly AllowlistEntry[] = [
  // User data can hold secrets (bootstrap credentials, connection strings): the node's, not the pod's.
  { name: "user-data", path: "/metadata/instance/compute/userdata", subtree: true, instanceMetadata: true, methods: { GET: "user-data" } },
  { name: "instance", path: "/metadata/instance", subtree: true, instanceMetadata: true, methods: { GET: "proxy" } },
  // A signed assertion of the node's identity: a pod is not the node.
  { name: "attested", path: "/metadata/attested", subtree: true, instanceMetadata: false, methods: { GET: "attested-document" } },
  // Reading is harmless and workloads use it to drain; a POST approves reboots/evictions of the whole node.
  { name: "scheduled-events", path: "/metadata/scheduledevents", subtree: false, instanceMetadata: false, methods: { GET: "proxy", POST: "scheduled-events-ack" } },
  { name: "versions", path: "/metadata/versions", subtree: false, instanceMetadata: false, methods: { GET: "proxy" } },
  { name: "loadbalancer", path: "/metadata/loadbalancer", subtree: false, instanceMetadata: false, methods: { GET: "proxy" } },
];

/** Segments of a proxied path: unreserved characters only (no `%`, `;`, `\`, `:`...), so no server reads them differently. */
const PLAIN_PATH = /^(?:\/[A-Za-z0-9._~-]+)+\/?$/;

export type AllowlistDecision =
  | { action: "proxy"; name: string }
  | { action: "forbidden"; name: string; reason: string }
  | { action: "method-not-allowed"; name: string; allow: string }
  | { action: "not-found" };

export interface ProxyAllowlistOptions {
  blockInstanceMetadata: boolean;
  allowImdsRoutes: readonly ImdsRouteOptIn[];
}

export class ProxyAllowlist {
  readonly #blockInstance: boolean;
  readonly #optIns: ReadonlySet<ImdsRouteOptIn>;

  constructor(options: ProxyAllowlistOptions) {
    this.#blockInstance = options.blockInstanceMetadata;
    this.#optIns = new Set(options.allowImdsRoutes);
  }

  /** The decision for a canonical path (canonical-path.ts) and method; `ambiguous` targets are never proxied. */
  decide(canonicalPath: string, method: string, ambiguous: boolean): AllowlistDecision {
    if (ambiguous || !PLAIN_PATH.test(canonicalPath)) return { action: "not-found" };
    const lower = canonicalPath.toLowerCase();
    const bare = lower.endsWith("/") ? lower.slice(0, -1) : lower;
    const entry = ALLOWLIST.find((e) => bare === e.path || (e.subtree && bare.startsWith(`${e.path}/`)));
    if (entry === undefined) return { action: "not-found" };
    const verdict = entry.methods[method];
    if (verdict === undefined) return { action: "method-not-allowed", name: entry.name, allow: Object.keys(entry.methods).join(", ") };
    if (entry.instanceMetadata && this.#blockInstance) {
      return { action: "forbidden", name: entry.name, reason: "Request blocked by AAD Pod Identity NMI (--block-instance-metadata)" };
    }
    if (verdict !== "proxy" && !this.#optIns.has(verdict)) {
      return { action: "forbidden", name: entry.name, reason: `${method} ${entry.path} is not passed to the node's IMDS by NMI; the node's operator can allow it with --allow-imds-routes=${verdict}` };
    }
    return { action: "proxy", name: entry.name };
  }
}

/** Parses `--allow-imds-routes` (comma list); an unknown name is an error naming the valid ones. */
export function parseImdsRouteOptIns(value: string | readonly string[]): ImdsRouteOptIn[] {
  const names = (typeof value === "string" ? value.split(",") : value).map((n) => n.trim()).filter((n) => n !== "");
  for (const name of names) {
    if (!(IMDS_ROUTE_OPT_INS as readonly string[]).includes(name)) {
      throw new RangeError(`Nmi: allowImdsRoutes (--allow-imds-routes) has "${name}"; valid names are ${IMDS_ROUTE_OPT_INS.join(", ")}`);
    }
  }
  return [...new Set(names)] as ImdsRouteOptIn[];
}
