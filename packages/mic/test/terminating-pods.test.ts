import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Harness, until } from "./helpers/harness";

let h: Harness;
beforeEach(async () => {
  h = await Harness.start();
});
afterEach(async () => {
  await h.close();
});

describe("a pod in its grace period", () => {
  it("keeps its identity assigned until its kubelet's final delete removes it (NMI serves it meanwhile)", async () => {
    const vmss = h.scaleSet("pool1");
    h.node("node-0", vmss, 0);
    const uai = h.identity("kv-reader");
    h.msiIdentity("kv-reader", uai);
    h.binding("kv-reader-binding", "kv-reader", "web");
    h.pod("web-1", { selector: "web", node: "node-0" });
    await h.startMic();
    await until(() => h.assignedState("default", "web-1-default-kv-reader") === "Assigned", "web-1 Assigned");

    h.terminate("default", "web-1");
    // A later pod's assignment completing proves MIC has seen the deletion mark of web-1 (events are handled in order).
    h.pod("web-2", { selector: "web", node: "node-0" });
    await until(() => h.assignedState("default", "web-2-default-kv-reader") === "Assigned", "web-2 Assigned");
    expect(h.assignedState("default", "web-1-default-kv-reader")).toBe("Assigned");
    expect(h.held(vmss)).toEqual([uai.id.toLowerCase()]);

    h.kube.deleteObject("pods", "default", "web-1", { gracePeriodSeconds: 0 });
    await until(() => h.assignedState("default", "web-1-default-kv-reader") === undefined, "web-1's assignment released");
    expect(h.held(vmss)).toEqual([uai.id.toLowerCase()]);
  });
});
