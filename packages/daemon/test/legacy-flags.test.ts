import { describe, expect, it } from "vitest";
import { CliValueError, goStyleArgs, legacyFlagNames, logLegacyFlagNotices, longFlagNames, orUsageError, takeLegacyFlags } from "../src/index";

describe("takeLegacyFlags", () => {
  it("takes v1.8 NMI chart 4.1.x's arguments out, one notice each, and leaves podidentity's own flags", () => {
    const argv = [
      "--node=aks-1",
      "--MICNamespace=kube-system",
      "--retry-attempts-for-created=16",
      "--retry-attempts-for-assigned=4",
      "--find-identity-retry-interval=5",
      "--enableScaleFeatures=true",
      "--metadata-header-required=true",
      "--log-format=json",
      "-v=2",
      "--custom-user-agent=contoso",
      "--set-retry-after-header=true",
    ];
    const r = takeLegacyFlags(argv, "nmi");
    expect(r.args).toEqual(["--node=aks-1", "--metadata-header-required=true"]);
    expect(r.notices.map((n) => [n.flag, n.action])).toEqual([
      ["--MICNamespace", "ignored"],
      ["--retry-attempts-for-created", "ignored"],
      ["--retry-attempts-for-assigned", "ignored"],
      ["--find-identity-retry-interval", "ignored"],
      ["--enableScaleFeatures", "ignored"],
      ["--log-format", "mapped"],
      ["-v", "mapped"],
      ["--custom-user-agent", "ignored"],
      ["--set-retry-after-header", "ignored"],
    ]);
    expect(r.logLevel).toBe("info");
    for (const n of r.notices) expect(n.detail.length, n.flag).toBeGreaterThan(20);
  });

  it("reads values as Go does: `=value` or the next argument for value flags; a bool never takes the next argument", () => {
    const r = takeLegacyFlags(["-logtostderr", "--node", "n1", "--v", "6", "-stderrthreshold", "INFO", "--alsologtostderr=false", "--", "--v=9"], "mic");
    expect(r.args).toEqual(["--node", "n1", "--", "--v=9"]);
    expect(r.notices.map((n) => n.flag)).toEqual(["-logtostderr", "--v", "-stderrthreshold", "--alsologtostderr"]);
    expect(r.logLevel).toBe("debug");
  });

  it("klog's underscores also work as dashes; verbosity 8 and above is trace", () => {
    const r = takeLegacyFlags(["--log-dir=/tmp", "--skip-headers", "-v=10"], "nmi");
    expect(r.args).toEqual([]);
    expect(r.notices.map((n) => n.flag)).toEqual(["--log-dir", "--skip-headers", "-v"]);
    expect(r.logLevel).toBe("trace");
  });

  it("only the component's own flags: MIC's are not NMI's", () => {
    expect(takeLegacyFlags(["--createDeleteBatch=20"], "nmi").args).toEqual(["--createDeleteBatch=20"]);
    expect(takeLegacyFlags(["--MICNamespace=x"], "mic").args).toEqual(["--MICNamespace=x"]);
    expect(legacyFlagNames("mic")).toContain("syncRetryDuration");
    expect(legacyFlagNames("mic")).not.toContain("MICNamespace");
  });

  it("refuses what Go would refuse, naming the flag", () => {
    expect(() => takeLegacyFlags(["-v=loud"], "nmi")).toThrow(/-v: klog's verbosity must be an integer/);
    expect(() => takeLegacyFlags(["--log-format=xml"], "mic")).toThrow(/unknown logging format "xml"/);
    expect(() => takeLegacyFlags(["--MICNamespace"], "nmi")).toThrow(new CliValueError("flag needs an argument: --MICNamespace"));
    expect(() => takeLegacyFlags(["--logtostderr=maybe"], "nmi")).toThrow(CliValueError);
  });

  it("--log-format=text is ignored with the reason; json is mapped", () => {
    expect(takeLegacyFlags(["--log-format=text"], "nmi").notices[0]).toMatchObject({ action: "ignored", detail: expect.stringContaining("JSON lines only") });
    expect(takeLegacyFlags(["--log-format", "json"], "nmi").notices[0]).toMatchObject({ action: "mapped" });
  });
});

describe("goStyleArgs", () => {
  const longs = longFlagNames(["--kubeconfig <path>", "--forceNamespaced [bool]", "-p, --prometheus-port <port>"]);
  it("rewrites one-dash spellings of declared long flags only", () => {
    expect(goStyleArgs(["-kubeconfig=/k", "-forceNamespaced", "-p", "9", "-prometheus-port", "1", "-x", "--", "-kubeconfig"], longs)).toEqual([
      "--kubeconfig=/k",
      "--forceNamespaced",
      "-p",
      "9",
      "--prometheus-port",
      "1",
      "-x",
      "--",
      "-kubeconfig",
    ]);
  });
  it("longFlagNames reads commander specs", () => expect([...longs]).toEqual(["kubeconfig", "forceNamespaced", "prometheus-port"]));
});

describe("logLegacyFlagNotices and orUsageError", () => {
  it("logs ignored flags at warn with the reason and mapped ones at info", () => {
    const lines: [string, object, string][] = [];
    const logger = { warn: (f: object, m: string) => lines.push(["warn", f, m]), info: (f: object, m: string) => lines.push(["info", f, m]) };
    logLegacyFlagNotices(logger, takeLegacyFlags(["--logtostderr", "-v=6"], "nmi").notices);
    expect(lines).toEqual([
      ["warn", { flag: "--logtostderr", reason: expect.stringContaining("JSON lines") }, "aad-pod-identity v1.8 flag ignored"],
      ["info", { flag: "-v", mappedTo: expect.stringContaining("log level debug") }, "aad-pod-identity v1.8 flag mapped"],
    ]);
  });

  it("turns a thrown CliValueError into the program's usage error", () => {
    const program = {
      error: (message: string, options: { exitCode: number; code: string }): never => {
        throw Object.assign(new Error(message), options);
      },
    };
    expect(orUsageError(program, () => 42)).toBe(42);
    expect(() => orUsageError(program, () => takeLegacyFlags(["-v=loud"], "mic"))).toThrow(
      expect.objectContaining({ message: `error: -v: klog's verbosity must be an integer, got "loud"`, exitCode: 1, code: "commander.invalidArgument" }),
    );
  });
});
