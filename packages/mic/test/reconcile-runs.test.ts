import { Writable } from "node:stream";
import { pino, type Logger } from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Harness } from "./helpers/harness";

const AAI = "azureassignedidentities";
const WAIT = { timeout: 15_000, interval: 20 };

let h: Harness;
afterEach(async () => {
  await h.close();
});

async function reconciles(mic: { metrics: { reconcileTotal: { get(): Promise<{ values: Array<{ labels: Record<string, unknown>; value: number }> }> } } }): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await mic.metrics.reconcileTotal.get()).values) out[String(v.labels["result"])] = v.value;
  return out;
}

/** A pino logger at debug level whose JSON lines are kept in `lines`. */
function capturingLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  let partial = "";
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      const text = partial + chunk.toString("utf8");
      const parts = text.split("\n");
      partial = parts.pop() ?? "";
      for (const line of parts) if (line !== "") lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino<never>({ level: "debug" }, stream), lines };
}

describe("a reconcile that cannot succeed (TerminalError)", () => {
  it("a 422 Invalid on create is counted as terminal, not retried, and told to the pod in an Event", async () => {
    h = await Harness.start();
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    h.msiIdentity("id-a", h.identity("id-a"));
    h.binding("id-a", "id-a", "id-a");
    h.kube.failNext({ verb: "create", resource: AAI, code: 422, message: "metadata.name: Invalid value: must be no more than 253 characters" });
    const mic = await h.startMic();
    h.pod("pod-a", { selector: "id-a", node: "node-0" });

    await vi.waitFor(async () => expect((await reconciles(mic))["terminal"]).toBe(1), WAIT);
    await vi.waitFor(() => expect(mic.quiescent).toBe(true), WAIT);
    // Not retried: no backoff or requeue is waiting for the key, nothing counted as an error or a success, and the
    // API server saw one create (a retry would have succeeded: the fault was for one request).
    expect(mic.queuedReconciles).toBe(0);
    expect(await reconciles(mic)).toEqual({ terminal: 1 });
    expect(h.kube.countRequests({ verb: "create", resource: AAI })).toBe(1);
    expect(h.assigned()).toEqual([]);
    await mic.flushEvents();
    expect(h.events({ reason: "binding apply error", kind: "Pod", name: "pod-a" }).map((e) => e.message)).toEqual([
      expect.stringContaining("Cannot create AzureAssignedIdentity default/pod-a-default-id-a"),
    ]);
  });

  it("a 500 on create is an error, retried with backoff until it succeeds", async () => {
    h = await Harness.start();
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    h.msiIdentity("id-a", h.identity("id-a"));
    h.binding("id-a", "id-a", "id-a");
    h.kube.failNext({ verb: "create", resource: AAI, code: 500 });
    const mic = await h.startMic();
    h.pod("pod-a", { selector: "id-a", node: "node-0" });

    await vi.waitFor(() => expect(h.assignedState("default", "pod-a-default-id-a")).toBe("Assigned"), WAIT);
    const counts = await reconciles(mic);
    expect(counts["error"]).toBe(1);
    expect(counts["terminal"]).toBeUndefined();
    expect(h.kube.countRequests({ verb: "create", resource: AAI })).toBe(2);
  });
});

describe("reconcile IDs", () => {
  it("every log line of one reconcile carries the same reconcileId and key, and each run has its own", async () => {
    h = await Harness.start();
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss);
    h.msiIdentity("id-a", h.identity("id-a"));
    h.binding("id-a", "id-a", "id-a");
    // One failed create first, so one run also logs its failure.
    h.kube.failNext({ verb: "create", resource: AAI, code: 500 });
    const { logger, lines } = capturingLogger();
    const mic = await h.startMic({ logger });
    h.pod("pod-a", { selector: "id-a", node: "node-0" });
    await vi.waitFor(() => expect(h.assignedState("default", "pod-a-default-id-a")).toBe("Assigned"), WAIT);
    await vi.waitFor(() => expect(mic.quiescent).toBe(true), WAIT);

    const key = "default/pod-a-default-id-a";
    const runs = new Map<string, Array<Record<string, unknown>>>();
    for (const line of lines) {
      if (typeof line["reconcileId"] !== "string") continue;
      const run = runs.get(line["reconcileId"]) ?? [];
      run.push(line);
      runs.set(line["reconcileId"], run);
    }
    // Several runs for the key (create failed, create, Assigned …), each opened and closed under its own ID.
    expect(runs.size).toBeGreaterThanOrEqual(3);
    for (const [id, run] of runs) {
      expect(id).toMatch(/^[0-9a-f]{8}$/);
      expect(run.every((l) => l["key"] === key)).toBe(true);
      expect(run[0]!["msg"]).toBe("reconciling");
      expect(["reconciled", "reconcile failed; retrying with backoff"]).toContain(run.at(-1)!["msg"]);
    }
    const failed = [...runs.values()].filter((run) => run.some((l) => l["msg"] === "reconcile failed; retrying with backoff"));
    expect(failed).toHaveLength(1);
    expect(failed[0]!.map((l) => l["msg"])).toEqual(["reconciling", "reconcile failed; retrying with backoff"]);
    // None of the reconciler's lines is written without its ID.
    const reconcilerLines = new Set(["reconciling", "reconciled", "reconcile failed; retrying with backoff", "reconcile cannot succeed; not retrying", "releasing", "assignment changed: replacing it"]);
    expect(lines.filter((l) => reconcilerLines.has(String(l["msg"]))).length).toBeGreaterThan(0);
    expect(lines.filter((l) => l["reconcileId"] === undefined && reconcilerLines.has(String(l["msg"])))).toEqual([]);
  });
});
