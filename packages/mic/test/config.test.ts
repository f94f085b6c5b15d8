import type { TokenCredential } from "@azure/core-auth";
import { parseKubeConfig } from "@podidentity/kube";
import { describe, expect, it } from "vitest";
import { DEFAULT_MIC_OPTIONS, resolveMicConfig } from "../src/runtime/config";

const kubeConfig = parseKubeConfig(
  JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "c", cluster: { server: "https://127.0.0.1:1" } }],
    users: [{ name: "u", user: { token: "t" } }],
    contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
    "current-context": "x",
  }),
  { source: "test", baseDir: "." },
);
const credential: TokenCredential = { getToken: () => Promise.resolve(null) };

describe("resolveMicConfig: every default filled in once, from DEFAULT_MIC_OPTIONS", () => {
  it("with nothing given, every tunable is the default and no port is served", () => {
    const config = resolveMicConfig({ kubeConfig, credential });
    const { httpProbePort: _p, prometheusPort: _m, leaderElection, ...tunables } = DEFAULT_MIC_OPTIONS;
    expect(config).toMatchObject(tunables);
    expect(config.leaderElection).toEqual(leaderElection);
    expect(config.httpProbePort).toBeUndefined();
    expect(config.prometheusPort).toBeUndefined();
  });

  it("a lease duration alone sets the renewal deadline (2/3) and retry period (1/7.5, at least 500 ms)", () => {
    expect(resolveMicConfig({ kubeConfig, credential, leaderElection: { leaseDurationMs: 60_000 } }).leaderElection).toMatchObject({ leaseDurationMs: 60_000, renewDeadlineMs: 40_000, retryPeriodMs: 8_000 });
    expect(resolveMicConfig({ kubeConfig, credential, leaderElection: { leaseDurationMs: 3_000 } }).leaderElection).toMatchObject({ renewDeadlineMs: 2_000, retryPeriodMs: 500 });
  });

  it("merges a partial write budget into the default one and normalises immutable client IDs", () => {
    const config = resolveMicConfig({ kubeConfig, credential, writeBudget: { capacity: 3 }, immutableUserMsis: [" ABC ", ""] });
    expect(config.writeBudget).toEqual({ ...DEFAULT_MIC_OPTIONS.writeBudget, capacity: 3 });
    expect(config.immutableUserMsis).toEqual(["abc"]);
  });

  it.each([
    [{ identityAssignmentReconcileIntervalMs: 0 }, "Mic: identityAssignmentReconcileIntervalMs must be > 0, got 0"],
    [{ pollIntervalMs: -1 }, "Mic: pollIntervalMs must be > 0, got -1"],
    [{ batchWindowMs: -5 }, "Mic: batchWindowMs must be >= 0, got -5"],
    [{ reconcileConcurrency: 1.5 }, "Mic: reconcileConcurrency must be an integer >= 1, got 1.5"],
    [{ leaderElection: { leaseDurationMs: 5_000, renewDeadlineMs: 5_000 } }, "Mic: leaderElection.renewDeadlineMs (5000) must be shorter than leaseDurationMs (5000)"],
  ])("refuses %j, naming the option", (bad, message) => {
    expect(() => resolveMicConfig({ kubeConfig, credential, ...bad })).toThrow(message);
  });

  it("requires a kubeConfig and a credential", () => {
    expect(() => resolveMicConfig({ kubeConfig: undefined as never, credential })).toThrow("Mic: kubeConfig is required");
    expect(() => resolveMicConfig({ kubeConfig, credential: undefined as never })).toThrow("Mic: credential is required");
  });
});
