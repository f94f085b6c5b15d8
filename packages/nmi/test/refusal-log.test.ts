import { Writable } from "node:stream";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { UserAssignedIdentity } from "@podidentity/testbed";
import { Cluster, KV } from "./helpers/cluster";

let c: Cluster;
let uai: UserAssignedIdentity;
let other: UserAssignedIdentity;
const BOUND = "127.0.18.1";
const UNLABELLED = "127.0.18.2";

/** NMI's log lines at the default level (info), as the JSON objects pino writes. */
function capturedLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString().split("\n")) if (text.trim() !== "") lines.push(JSON.parse(text) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: "info" }, sink), lines };
}

const refused = (lines: Record<string, unknown>[]): Record<string, unknown>[] => lines.filter((l) => l["msg"] === "request refused");

beforeEach(async () => {
  c = await Cluster.start();
  uai = c.cloud.createUserAssignedIdentity("kv-reader");
  other = c.cloud.createUserAssignedIdentity("someone-else");
  c.assignOnVm(uai);
  c.assignOnVm(other);
  c.identity("shop", "kv-reader", uai, { selector: "web" });
  c.pod("web-1", BOUND, { namespace: "shop", label: "web" });
  c.pod("loner", UNLABELLED, { namespace: "shop" });
  c.assigned({ name: "web-1", namespace: "shop" }, { name: "kv-reader", namespace: "shop" }, "Assigned");
});
afterEach(async () => c.close());

describe("refusals in NMI's log at the default level", () => {
  it("a refusal is logged once with the pod, the code and the redacted identity asked for; the token never", async () => {
    const { logger, lines } = capturedLogger();
    await c.startNmi({ logger });
    const noBinding = await c.token(UNLABELLED, { resource: KV, client_id: other.clientId });
    expect(noBinding.status).toBe(403);
    const notBound = await c.token(BOUND, { resource: KV, client_id: other.clientId });
    expect(notBound.status).toBe(403);
    const ok = await c.token(BOUND);
    expect(ok.status).toBe(200);

    const logged = refused(lines);
    expect(logged).toHaveLength(2);
    expect(logged[0]).toMatchObject({ level: 40, pod: "shop/loner", remote: UNLABELLED, status: 403, code: "podidentity_no_binding", route: "token" });
    expect(logged[1]).toMatchObject({ pod: "shop/web-1", status: 403, code: "podidentity_not_bound" });
    for (const line of logged) {
      expect(line["identity"]).toBe(`client_id=${other.clientId.slice(0, 4)}…${other.clientId.slice(-4)}`);
      expect(JSON.stringify(line)).not.toContain(other.clientId);
    }
    const all = JSON.stringify(lines);
    expect(all).not.toContain(String(ok.body.access_token));
  });

  it("a pod that keeps asking gets 5 lines a minute, and the next window's first line counts what was left out", async () => {
    const { logger, lines } = capturedLogger();
    let offsetMs = 0;
    await c.startNmi({ logger, now: () => Date.now() + offsetMs });
    for (let i = 0; i < 20; i++) expect((await c.token(UNLABELLED)).status).toBe(403);
    // Another pod is not silenced by the first one's flood.
    expect((await c.token(BOUND, { resource: KV, client_id: other.clientId })).status).toBe(403);
    let logged = refused(lines);
    expect(logged.filter((l) => l["pod"] === "shop/loner")).toHaveLength(5);
    expect(logged.filter((l) => l["pod"] === "shop/web-1")).toHaveLength(1);

    offsetMs = 61_000;
    expect((await c.token(UNLABELLED)).status).toBe(403);
    logged = refused(lines).filter((l) => l["pod"] === "shop/loner");
    expect(logged).toHaveLength(6);
    expect(logged[5]).toMatchObject({ suppressedBefore: 15 });
  });
});
