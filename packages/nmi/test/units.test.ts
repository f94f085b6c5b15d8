import { describe, expect, it } from "vitest";
import { parseCliOptions } from "../src/cli-options";
import { DEFAULT_NMI_OPTIONS, resolveNmiConfig } from "../src/config";
import { NmiError, redactId } from "../src/errors";
import { splitRule } from "../src/interception/iptables-manager";
import { parseRequestTarget } from "../src/server/request-route";
import { parseImdsToken } from "../src/token/imds-token-source";
import { UpstreamLimiter } from "../src/token/upstream-limiter";

describe("parseRequestTarget", () => {
  it.each([
    ["/metadata/identity/oauth2/token?resource=x", "token"],
    ["/MetaData/identity/oauth2/token/", "token"],
    ["/metadata/IDENTITY/oauth2/token", "token"],
    ["/x/../metadata/./identity/%2e/oauth2//token", "token"],
    ["/metadata\\identity\\oauth2\\token", "malformed-token"],
    ["/metadata/identity/oauth2/token/extra", "malformed-token"],
    ["/metadata/identity/info", "identity"],
    ["/host/token", "host-token"],
    ["/metadata/instance/compute", "metadata"],
    ["/METADATA/Instance", "metadata"],
    ["/metadata/scheduledevents", "metadata"],
    ["/", "metadata"],
    ["http://evil.example/metadata/identity/oauth2/token?resource=x", "token"],
    ["*", "metadata"],
  ])("%s → %s", (url, route) => {
    expect(parseRequestTarget(url).route).toBe(route);
  });

  it("keeps the client from naming another host", () => {
    const t = parseRequestTarget("http://evil.example:8080/a/b?c=d#frag");
    expect(t.path).toBe("/a/b");
    expect(t.query).toBe("c=d");
  });
});

describe("resolveNmiConfig", () => {
  it("fills docs/contract.md's defaults", () => {
    const c = resolveNmiConfig({ nodeName: "n" });
    expect(c).toMatchObject({ listenAddress: "0.0.0.0", port: 2579, forceNamespaced: true, metadataHeaderRequired: true, waitForAssignmentMs: 20_000, upstreamImds: "http://169.254.169.254" });
    expect(DEFAULT_NMI_OPTIONS.upstreamRequestsPerSecond).toBeLessThan(20);
    expect(DEFAULT_NMI_OPTIONS.upstreamMaxConcurrent).toBe(5);
  });

  it.each([
    [{ nodeName: "" }, /nodeName is required/],
    [{ nodeName: "n", operationMode: "other" as never }, /operationMode/],
    [{ nodeName: "n", operationMode: "managed" as const, forceNamespaced: false }, /managed requires forceNamespaced/],
    [{ nodeName: "n", port: 70000 }, /port/],
    [{ nodeName: "n", upstreamImds: "ftp://x" }, /upstreamImds/],
    [{ nodeName: "n", waitForAssignmentMs: -1 }, /waitForAssignmentMs/],
    [{ nodeName: "n", metadataIp: "::1" }, /metadataIp/],
    [{ nodeName: "n", listenAddress: "::" }, /listenAddress \(--nmi-listen-address\) must be an IPv4 address/],
    [{ nodeName: "n", hostIp: "fd00::4" }, /hostIp \(--host-ip\) must be the node's IPv4 address/],
  ])("refuses %j", (input, message) => {
    expect(() => resolveNmiConfig(input)).toThrow(message);
  });
});

describe("parseImdsToken", () => {
  it("reads string or number fields, expires_on as a date, and falls back to expires_in", () => {
    const now = 1_700_000_000_000;
    expect(parseImdsToken({ access_token: "t", expires_on: "1700003600", resource: "r" }, "r", "c", now)?.expiresOnMs).toBe(1_700_003_600_000);
    expect(parseImdsToken({ access_token: "t", expires_on: 1700003600 }, "r", "c", now)?.expiresOnMs).toBe(1_700_003_600_000);
    expect(parseImdsToken({ access_token: "t", expires_on: "2023-11-14T23:13:20Z" }, "r", "c", now)?.expiresOnMs).toBe(Date.parse("2023-11-14T23:13:20Z"));
    expect(parseImdsToken({ access_token: "t", expires_in: "60" }, "r", "c", now)?.expiresOnMs).toBe(now + 60_000);
    expect(parseImdsToken({ expires_in: "60" }, "r", "c", now)).toBeUndefined();
  });
});

describe("redactId", () => {
  it("keeps the first and last four characters only", () => {
    expect(redactId("5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b")).toBe("5f0c…4a5b");
    expect(redactId("short")).toBe("****");
  });
});

describe("splitRule", () => {
  it("keeps quoted comments whole", () => {
    expect(splitRule('-A x -m comment --comment "a b c" -j DROP')).toEqual(["-A", "x", "-m", "comment", "--comment", "a b c", "-j", "DROP"]);
  });
});

describe("UpstreamLimiter", () => {
  it("never runs more than maxConcurrent at once and queues the rest", async () => {
    const limiter = new UpstreamLimiter({ requestsPerSecond: 1000, maxConcurrent: 2, queueTimeoutMs: 5_000, retryAfterSeconds: 1 });
    let running = 0;
    let peak = 0;
    const releases: Array<() => void> = [];
    const tasks = Array.from({ length: 6 }, () =>
      limiter.run(async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise<void>((r) => releases.push(r));
        running--;
      }),
    );
    for (let done = 0; done < 6; done++) {
      await new Promise<void>((r) => setImmediate(r));
      expect(limiter.inFlight).toBeLessThanOrEqual(2);
      releases.shift()?.();
      await new Promise<void>((r) => setImmediate(r));
    }
    while (releases.length > 0 || running > 0) {
      releases.shift()?.();
      await new Promise<void>((r) => setImmediate(r));
    }
    await Promise.all(tasks);
    expect(peak).toBe(2);
  });

  it("spaces calls to the rate and fails with 503 when the queue wait is exceeded", async () => {
    const limiter = new UpstreamLimiter({ requestsPerSecond: 2, maxConcurrent: 10, queueTimeoutMs: 50, retryAfterSeconds: 7 });
    const results = await Promise.allSettled([1, 2, 3].map(() => limiter.run(async () => "ok")));
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "rejected"]);
    const error = (results[2] as PromiseRejectedResult).reason as NmiError;
    expect(error).toBeInstanceOf(NmiError);
    expect(error.wireCode).toBe("podidentity_upstream_unavailable");
    expect(error.code).toBe("nmi.upstream_unavailable");
    expect(error.retryAfterSeconds).toBe(7);
  });
});

describe("parseCliOptions (v1.8 flag names)", () => {
  it("defaults to docs/contract.md's values, with the node from NODE_NAME", () => {
    const o = parseCliOptions([], { NODE_NAME: "n1" });
    expect(o.config).toMatchObject({ nodeName: "n1", port: 2579, forceNamespaced: true, operationMode: "standard", waitForAssignmentMs: 20_000, upstreamImds: "http://169.254.169.254", httpProbePort: 8085, prometheusPort: 9090 });
  });

  it("reads pflag-style booleans and durations", () => {
    const o = parseCliOptions(["--node", "n", "--force-namespaced=false", "--block-instance-metadata", "--wait-for-assignment", "5s", "--ipt-update-interval-sec", "30", "--metadata-header-required=false"], {});
    expect(o.config).toMatchObject({ forceNamespaced: false, blockInstanceMetadata: true, waitForAssignmentMs: 5_000, iptablesUpdateIntervalMs: 30_000, metadataHeaderRequired: false });
  });

  it("accepts v1.8's --forceNamespaced and env FORCENAMESPACED", () => {
    expect(parseCliOptions(["--forceNamespaced=false"], {}).config.forceNamespaced).toBe(false);
    expect(parseCliOptions([], { FORCENAMESPACED: "false" }).config.forceNamespaced).toBe(false);
    expect(parseCliOptions(["--force-namespaced=true"], { FORCENAMESPACED: "false" }).config.forceNamespaced).toBe(true);
  });

  it("takes the node's address from --host-ip, else the first IPv4 of env HOST_IP (v1.8's manifests set it from the downward API)", () => {
    expect(parseCliOptions([], {}).config.hostIp).toBeUndefined();
    expect(parseCliOptions([], { HOST_IP: "10.240.0.4" }).config.hostIp).toBe("10.240.0.4");
    expect(parseCliOptions([], { HOST_IP: "fd00::4,10.240.0.4" }).config.hostIp).toBe("10.240.0.4");
    expect(parseCliOptions([], { HOST_IP: "fd00::4" }).config.hostIp).toBeUndefined();
    expect(parseCliOptions(["--host-ip", "10.240.0.5"], { HOST_IP: "10.240.0.4" }).config.hostIp).toBe("10.240.0.5");
    expect(parseCliOptions(["--nmi-listen-address", "127.0.0.1"], {}).config.listenAddress).toBe("127.0.0.1");
  });
});
