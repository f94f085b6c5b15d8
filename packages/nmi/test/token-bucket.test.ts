import { describe, expect, it } from "vitest";
import { TokenBucket } from "../src/token-bucket";

describe("TokenBucket (on an injected clock)", () => {
  it("starts full, accrues perSecond up to capacity, and says how long until the next token", () => {
    const b = new TokenBucket(2, 3, 1_000);
    for (let i = 0; i < 3; i++) {
      expect(b.available(1_000)).toBe(true);
      b.take();
    }
    expect(b.available(1_000)).toBe(false);
    expect(b.msUntilToken()).toBe(500);
    expect(b.available(1_250)).toBe(false);
    expect(b.msUntilToken()).toBe(250);
    expect(b.available(1_500)).toBe(true);
    // a long idle fills it to capacity, not beyond
    b.take();
    expect(b.available(60_000)).toBe(true);
    for (let i = 0; i < 3; i++) b.take();
    expect(b.available(60_000)).toBe(false);
  });

  it("a clock that steps back accrues nothing and loses nothing", () => {
    const b = new TokenBucket(1, 1, 10_000);
    b.take();
    expect(b.available(5_000)).toBe(false);
    expect(b.available(10_999)).toBe(false);
    expect(b.available(11_000)).toBe(true);
  });
});
