// A pod being deleted keeps its identity through its grace period: its SIGTERM handler reads a Key Vault secret
// through NMI while the pod object is terminating (deletionTimestamp set, phase Running), then the pod goes away.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { E2eCluster } from "../src/e2e-cluster";

const FIXTURES = join(import.meta.dirname, "fixtures");

describe("graceful termination", () => {
  let cluster: E2eCluster;
  beforeAll(async () => {
    cluster = await E2eCluster.start();
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it("an app whose SIGTERM handler reads a Key Vault secret succeeds during its grace period; the pod is gone afterwards", async () => {
    const id = await cluster.bindIdentity(cluster.createIdentity("flusher-id", { secretGet: true }), { selector: "flusher" });
    cluster.grantSecret("last-secret", "flush-me-please");
    const pod = await cluster.addPod("flusher", { labels: { aadpodidbinding: "flusher" } });
    await cluster.assigned.forPod(pod, id.name, "Assigned");

    const app = cluster.spawnInPod(pod, process.execPath, [join(FIXTURES, "sigterm-secret.mjs")], { env: { KEY_VAULT_URL: cluster.vaultUrl, SECRET_NAME: "last-secret" } });
    let stdout = "";
    app.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    await new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`the app did not start: ${stdout}`)), 30_000);
      const check = (): void => {
        if (!stdout.includes("ready\n")) return;
        clearTimeout(deadline);
        app.stdout?.off("data", check);
        resolve();
      };
      app.stdout?.on("data", check);
    });
    const exited = new Promise<number | null>((resolve) => app.once("exit", (code) => resolve(code)));

    const since = performance.now();
    // 100 s of grace is 10 s at the testbed's scale: room for the handler, and the SIGKILL still bounds a hang.
    await cluster.removePod(pod, { gracePeriodSeconds: 100 });
    expect(await exited).toBe(0);
    const outcome = JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as Record<string, unknown>;
    expect(outcome).toEqual({ ok: true, status: 200, length: "flush-me-please".length });
    await cluster.nmiAnswered(pod, { route: "token", status: 200, since });
    await expect(cluster.admin.get(`/api/v1/namespaces/default/pods/flusher`)).rejects.toThrow(/404/);
    await cluster.assigned.noneForPod(pod);
  });
});
