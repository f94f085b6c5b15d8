import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { CliValueError, forceNamespacedSetting, formatDuration, parseBool, parseCsv, parseDuration, parseInteger, parsePort } from "../src/index";

describe("parseBool: Go's strconv.ParseBool", () => {
  it.each(["1", "t", "T", "TRUE", "true", "True", "yes", "YES"])("%s is true", (v) => expect(parseBool(v)).toBe(true));
  it.each(["0", "f", "F", "FALSE", "false", "False", "no"])("%s is false", (v) => expect(parseBool(v)).toBe(false));
  it("a flag without a value is true", () => expect(parseBool(undefined)).toBe(true));
  it.each(["tRUE", "2", "", "on", "y"])("%j is refused, as Go refuses it", (v) => expect(() => parseBool(v)).toThrow(CliValueError));
});

describe("parseDuration: Go's time.ParseDuration (milliseconds)", () => {
  it.each([
    ["15s", 15_000],
    ["500ms", 500],
    ["3m", 180_000],
    ["1h", 3_600_000],
    ["1h30m", 5_400_000],
    ["1.5h", 5_400_000],
    ["2m3.5s", 123_500],
    ["1500us", 1.5],
    ["1500µs", 1.5],
    ["2000000ns", 2],
    [".5s", 500],
    ["+1s", 1000],
    ["0", 0],
    ["20", 20_000],
  ])("%s = %d ms", (text, ms) => expect(parseDuration(text)).toBeCloseTo(ms, 9));
  it.each(["", "s", "1x", "1 h", "h1", "-1s", "1h-5m", "1.2.3s", "1d"])("%j is refused", (text) => expect(() => parseDuration(text)).toThrow(CliValueError));
  it.each([
    [180_000, "3m"],
    [15_000, "15s"],
    [5_400_000, "1h30m"],
    [500, "500ms"],
    [61_500, "1m1s500ms"],
    [0, "0s"],
  ])("formatDuration(%d) = %s, which parseDuration reads back", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
    expect(parseDuration(text)).toBe(ms);
  });
});

describe("integers, ports, lists", () => {
  it("parseInteger refuses what Number() would take", () => {
    expect(parseInteger("42")).toBe(42);
    expect(parseInteger("-3")).toBe(-3);
    for (const bad of ["", "1.5", "0x10", "1e3", " ", "4 2"]) expect(() => parseInteger(bad), bad).toThrow(CliValueError);
  });
  it("parsePort takes 0-65535 only", () => {
    expect(parsePort("0")).toBe(0);
    expect(parsePort("65535")).toBe(65_535);
    for (const bad of ["65536", "-1", "80.5", "http", ""]) expect(() => parsePort(bad), bad).toThrow(CliValueError);
  });
  it("parseCsv trims and drops empty items", () => expect(parseCsv(" a, b,,c ,")).toEqual(["a", "b", "c"]));
});

describe("forceNamespacedSetting", () => {
  it("flag, then env FORCENAMESPACED, then the default", () => {
    expect(forceNamespacedSetting(false, { FORCENAMESPACED: "true" }, true)).toBe(false);
    expect(forceNamespacedSetting(undefined, { FORCENAMESPACED: "false" }, true)).toBe(false);
    expect(forceNamespacedSetting(undefined, { FORCENAMESPACED: "" }, true)).toBe(true);
    expect(forceNamespacedSetting(undefined, {}, false)).toBe(false);
  });
  it("a malformed env value names the variable", () => {
    expect(() => forceNamespacedSetting(undefined, { FORCENAMESPACED: "sure" }, true)).toThrow(/env FORCENAMESPACED: expected true or false/);
  });
});

describe("as commander option parsers", () => {
  it("a CliValueError is commander's invalid-argument error: its message, exit code 1", () => {
    const errors: string[] = [];
    const program = new Command("x")
      .exitOverride()
      .configureOutput({ writeErr: (s) => errors.push(s), writeOut: () => undefined })
      .option("--port <n>", "a port", parsePort);
    let thrown: unknown;
    try {
      program.parse(["--port", "99999"], { from: "user" });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toMatchObject({ code: "commander.invalidArgument", exitCode: 1 });
    expect(errors.join("")).toContain(`option '--port <n>' argument '99999' is invalid. expected a port number 0-65535, got "99999"`);
  });
});
