import { describe, expect, it } from "vitest";
import { DaemonError, errorLogFields } from "../src/index";

describe("DaemonError: one base class, namespaced codes", () => {
  it("keeps the code, the subclass's name and the cause", () => {
    class ArmRefused extends DaemonError {}
    const cause = new Error("socket hang up");
    const error = new ArmRefused("mic.arm_refused", "ARM refused the PATCH", { cause });
    expect(error).toBeInstanceOf(DaemonError);
    expect(error).toMatchObject({ name: "ArmRefused", code: "mic.arm_refused", message: "ARM refused the PATCH", cause });
  });

  it.each(["ARM_REFUSED", "mic", "mic.", "Mic.arm", "mic.arm-refused", "mic..x", ".x"])("refuses the code %j (not <daemon>.<what>)", (code) => {
    expect(() => new DaemonError(code, "x")).toThrow(/code must look like "mic.arm_refused"/);
  });

  it("log fields carry the message and code only, never the cause", () => {
    const error = new DaemonError("nmi.no_binding", "no binding", { cause: new Error("Bearer secret-token") });
    expect(errorLogFields(error)).toEqual({ err: "no binding", code: "nmi.no_binding" });
    expect(JSON.stringify(errorLogFields(error))).not.toContain("secret-token");
    expect(errorLogFields("plain")).toEqual({ err: "plain" });
  });
});
