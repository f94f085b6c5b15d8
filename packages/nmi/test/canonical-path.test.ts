import { describe, expect, it } from "vitest";
import { parseCliOptions } from "../src/cli-options";
import { resolveNmiConfig } from "../src/config";
import { canonicalizeTarget } from "../src/server/canonical-path";
import { PodRateLimiter } from "../src/server/pod-rate-limiter";
import { IMDS_ROUTE_OPT_INS, ProxyAllowlist, parseImdsRouteOptIns } from "../src/server/proxy-allowlist";

describe("canonicalizeTarget", () => {
  it.each([
    ["/metadata/identity/oauth2/token", "/metadata/identity/oauth2/token"],
    ["/x/../metadata/identity/oauth2/token", "/metadata/identity/oauth2/token"],
    ["/metadata/./identity/oauth2/token", "/metadata/identity/oauth2/token"],
    ["/%2e/metadata/identity/oauth2/token", "/metadata/identity/oauth2/token"],
    ["/x/%2E%2e/metadata/identity/oauth2/token", "/metadata/identity/oauth2/token"],
    ["/x/.%2e/metadata/%2E/identity/oauth2/token", "/metadata/identity/oauth2/token"],
    ["//metadata///identity//oauth2/token", "/metadata/identity/oauth2/token"],
    ["/%6d%65tadata/identity/oauth2/token", "/metadata/identity/oauth2/token"],
    ["/../../metadata/instance", "/metadata/instance"],
    ["/metadata/instance/.", "/metadata/instance/"],
    ["/metadata/instance/compute/..", "/metadata/instance/"],
    ["/a//../b", "/b"],
    ["/metadata;x/identity", "/metadata;x/identity"],
    ["/x/..;/metadata", "/x/..;/metadata"],
    ["/a%2fb", "/a%2Fb"],
    ["/a%20b%zz", "/a%20b%zz"],
    ["/", "/"],
    ["", "/"],
    ["*", "/*"],
    ["http://169.254.169.254/metadata/instance?api-version=1#frag", "/metadata/instance"],
    ["HTTP://evil.example:8080", "/"],
  ])("%s → %s", (raw, path) => {
    expect(canonicalizeTarget(raw).path).toBe(path);
  });

  it("keeps the query as sent and drops the fragment", () => {
    const t = canonicalizeTarget("/x/../metadata/instance?api-version=2021-02-01&a=%2e%2e#frag?no");
    expect(t).toEqual({ path: "/metadata/instance", lower: "/metadata/instance", query: "api-version=2021-02-01&a=%2e%2e", ambiguous: false });
  });

  it.each(["/metadata\\instance", "/metadata%2finstance", "/metadata%5Cinstance", "/a%2F../metadata/instance"])("%s is ambiguous", (raw) => {
    expect(canonicalizeTarget(raw).ambiguous).toBe(true);
  });
});

describe("ProxyAllowlist", () => {
  const closed = new ProxyAllowlist({ blockInstanceMetadata: false, allowImdsRoutes: [] });
  const open = new ProxyAllowlist({ blockInstanceMetadata: false, allowImdsRoutes: [...IMDS_ROUTE_OPT_INS] });
  const blocked = new ProxyAllowlist({ blockInstanceMetadata: true, allowImdsRoutes: [...IMDS_ROUTE_OPT_INS] });

  it.each([
    ["/metadata/instance", "GET", "proxy"],
    ["/Metadata/Instance/compute/vmId", "GET", "proxy"],
    ["/metadata/instance/", "GET", "proxy"],
    ["/metadata/instance", "POST", "method-not-allowed"],
    ["/metadata/instance", "HEAD", "method-not-allowed"],
    ["/metadata/instance/compute/userData", "GET", "forbidden"],
    ["/metadata/instance/compute/USERDATA/", "GET", "forbidden"],
    ["/metadata/instance/compute/userData/x", "GET", "forbidden"],
    ["/metadata/attested/document", "GET", "forbidden"],
    ["/metadata/attested", "GET", "forbidden"],
    ["/metadata/scheduledevents", "GET", "proxy"],
    ["/metadata/scheduledevents", "POST", "forbidden"],
    ["/metadata/scheduledevents", "DELETE", "method-not-allowed"],
    ["/metadata/versions", "GET", "proxy"],
    ["/metadata/loadbalancer", "GET", "proxy"],
    ["/metadata/loadbalancer/x", "GET", "not-found"],
    ["/metadata/instance/compute%3Bx", "GET", "not-found"],
    ["/metadata/instance;x", "GET", "not-found"],
    ["/metadata/instance/%00", "GET", "not-found"],
    ["/metadata", "GET", "not-found"],
    ["/", "GET", "not-found"],
    ["/doesnotexist", "GET", "not-found"],
  ])("closed by default: %s %s → %s", (path, method, action) => {
    expect(closed.decide(path, method, false).action).toBe(action);
  });

  it("opt-ins open user data, the attested document and scheduled-event acknowledgements", () => {
    expect(open.decide("/metadata/instance/compute/userData", "GET", false).action).toBe("proxy");
    expect(open.decide("/metadata/attested/document", "GET", false).action).toBe("proxy");
    expect(open.decide("/metadata/scheduledevents", "POST", false).action).toBe("proxy");
  });

  it("--block-instance-metadata covers user data even when opted in, not the other routes", () => {
    expect(blocked.decide("/metadata/instance/compute", "GET", false).action).toBe("forbidden");
    expect(blocked.decide("/metadata/instance/compute/userData", "GET", false).action).toBe("forbidden");
    expect(blocked.decide("/metadata/scheduledevents", "GET", false).action).toBe("proxy");
  });

  it("never proxies an ambiguous target, and answers 405 with Allow for a listed path", () => {
    expect(open.decide("/metadata/instance", "GET", true).action).toBe("not-found");
    expect(closed.decide("/metadata/scheduledevents", "PUT", false)).toEqual({ action: "method-not-allowed", name: "scheduled-events", allow: "GET, POST" });
  });

  it("opt-in names are checked, and the error names the valid ones", () => {
    expect(parseImdsRouteOptIns("user-data, scheduled-events-ack,user-data")).toEqual(["user-data", "scheduled-events-ack"]);
    expect(() => parseImdsRouteOptIns("user-data,userdata")).toThrow(/"userdata"; valid names are user-data, attested-document, scheduled-events-ack/);
    expect(() => resolveNmiConfig({ nodeName: "n", allowImdsRoutes: ["nope" as never] })).toThrow(/--allow-imds-routes/);
  });

  it("flags: --allow-imds-routes, --max-connections, --idle-connection-timeout", () => {
    const { config } = parseCliOptions(["--node", "n", "--allow-imds-routes", "attested-document", "--max-connections", "64", "--idle-connection-timeout", "3s"], {});
    expect(config).toMatchObject({ allowImdsRoutes: ["attested-document"], maxConnections: 64, idleConnectionTimeoutMs: 3000 });
    const defaults = resolveNmiConfig(parseCliOptions(["--node", "n"], {}).config);
    expect(defaults).toMatchObject({ allowImdsRoutes: [], maxConnections: 1024, idleConnectionTimeoutMs: 15_000 });
    expect(() => resolveNmiConfig({ nodeName: "n", maxConnections: 0 })).toThrow(/maxConnections/);
    expect(() => resolveNmiConfig({ nodeName: "n", idleConnectionTimeoutMs: -1 })).toThrow(/idleConnectionTimeoutMs/);
  });
});

describe("PodRateLimiter", () => {
  function limiter(overrides: Partial<ConstructorParameters<typeof PodRateLimiter>[0]> = {}): { l: PodRateLimiter; clock: { ms: number } } {
    const clock = { ms: 0 };
    const l = new PodRateLimiter({ requestsPerSecondPerPod: 1, burstPerPod: 2, requestsPerSecond: 3, burst: 5, maxTrackedPods: 3, now: () => clock.ms, ...overrides });
    return { l, clock };
  }

  it("gives each pod its burst, then its rate, with Retry-After until the next token", () => {
    const { l, clock } = limiter();
    expect(l.take("a").ok).toBe(true);
    expect(l.take("a").ok).toBe(true);
    expect(l.take("a")).toEqual({ ok: false, scope: "pod", retryAfterSeconds: 1 });
    expect(l.take("b").ok).toBe(true);
    clock.ms += 1000;
    expect(l.take("a").ok).toBe(true);
    expect(l.take("a").ok).toBe(false);
  });

  it("a node-wide ceiling holds however many pods ask", () => {
    const { l, clock } = limiter({ burst: 3, requestsPerSecond: 3 });
    const answers = ["a", "b", "c", "d", "e"].map((ip) => l.take(ip));
    expect(answers.filter((a) => a.ok)).toHaveLength(3);
    expect(answers[4]).toEqual({ ok: false, scope: "node", retryAfterSeconds: 1 });
    clock.ms += 1000;
    expect(["f", "g", "h", "i"].map((ip) => l.take(ip).ok)).toEqual([true, true, true, false]);
  });

  it("keeps at most maxTrackedPods buckets", () => {
    const { l } = limiter({ burst: 1000, requestsPerSecond: 1000 });
    for (let i = 0; i < 50; i++) l.take(`10.0.0.${i}`);
    expect(l.trackedPods).toBe(3);
  });
});
