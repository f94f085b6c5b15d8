import { describe, expect, it } from "vitest";
import { ManualClock, TokenBucket } from "../../src/index";

describe("TokenBucket", () => {
  it("allows a burst of capacity, then refills continuously on the clock", () => {
    const clock = new ManualClock(0);
    const bucket = new TokenBucket({ capacity: 3, refillPerMinute: 6 }, clock);
    expect([bucket.take().ok, bucket.take().ok, bucket.take().ok]).toEqual([true, true, true]);
    expect(bucket.take()).toEqual({ ok: false, retryAfterMs: 10_000 });
    clock.advance(5_000);
    expect(bucket.take()).toEqual({ ok: false, retryAfterMs: 5_000 });
    clock.advance(5_000);
    expect(bucket.take().ok).toBe(true);
    clock.advance(10 * 60_000);
    expect(bucket.available()).toBe(3);
  });

  it("validates its options with the class name in the message", () => {
    const clock = new ManualClock(0);
    expect(() => new TokenBucket({ capacity: 0, refillPerMinute: 1 }, clock)).toThrow(/TokenBucket: capacity/);
    expect(() => new TokenBucket({ capacity: 1, refillPerMinute: 0 }, clock)).toThrow(/TokenBucket: refillPerMinute/);
  });
});
