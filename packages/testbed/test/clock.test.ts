import { describe, expect, it } from "vitest";
import { ManualClock } from "../src/index";

describe("ManualClock", () => {
  it("moves only when advanced", () => {
    const clock = new ManualClock(1_000);
    expect(clock.now()).toBe(1_000);
    clock.advance(500);
    expect(clock.now()).toBe(1_500);
    expect(() => clock.advance(-1)).toThrow(RangeError);
  });
});
