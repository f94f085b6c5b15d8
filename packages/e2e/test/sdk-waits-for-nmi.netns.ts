// The SDK in a pod waits for a restarting NMI (issue 15, item 1). NMI keeps its interception while it is stopped,
// so a pod's connection to 169.254.169.254 is refused until NMI is back. An app that starts in that window must not
// give up as it would off-cluster: in a pod (KUBERNETES_SERVICE_HOST set, as the kubelet sets it in every pod) the
// SDK retries a refused connection for up to firstContact.refusedMaxElapsedMs (15 s) before the endpoint has ever
// answered, and gets its token once NMI listens again.
import { join } from "node:path";
import type { TopologyNode } from "@podidentity/testbed";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ComponentProcess } from "../src/component-process";
import { E2eCluster, type ClusterIdentity } from "../src/e2e-cluster";
import { FIXTURES } from "./helpers/pod-clients";
import type { ClientOutcome } from "./helpers/pod-clients";

describe("@podidentity/sdk in a pod waits for NMI to come back", () => {
  let cluster: E2eCluster;
  let node: TopologyNode;
  let id: ClusterIdentity;

  beforeAll(async () => {
    cluster = await E2eCluster.start();
    node = cluster.node(0);
    id = await cluster.bindIdentity(cluster.createIdentity("sdk-waits-id"), { selector: "sdk-waits" });
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it("an app started while NMI is stopped retries the refused connection and gets its token once NMI is back", async () => {
    const pod = await cluster.addPod("sdk-waits-app", { labels: { aadpodidbinding: "sdk-waits" }, node: node.name });
    const exit = await cluster.stopNmi(node.name);
    expect(exit.code).toBe(0);

    // AZURE_LOG_LEVEL=info: the SDK logs each retry with its reason on stderr; the test waits on that line.
    const app = new ComponentProcess(
      "sdk-app",
      cluster.spawnInPod(pod, process.execPath, [join(FIXTURES, "sdk-client.mjs")], {
        env: { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443", AZURE_LOG_LEVEL: "info" },
      }),
    );
    try {
      await app.waitForLine("the SDK retrying a refused connection", (l) => /attempt 1 for https:\/\/vault\.azure\.net failed \(ECONNREFUSED\); retrying/.test(l.text), 10_000);
      const restartedAt = performance.now();
      await cluster.startNmi(node.name);
      const result = await app.waitForLine("the app's outcome", (l) => l.json !== undefined && "ok" in l.json, 20_000);
      const outcome = result.json as unknown as ClientOutcome;
      expect(outcome, outcome.message).toMatchObject({ ok: true, claims: { appid: id.azure.clientId, aud: "https://vault.azure.net" } });
      // The restarted NMI answered this pod; before it, every attempt was refused (no answer from anything else).
      const answered = await cluster.nmiAnswered(pod, { route: "token", status: 200, since: restartedAt });
      expect(answered["remote"]).toBe(pod.ip);
      const retries = app.lines.filter((l) => /failed \((\S+)\); retrying/.test(l.text)).map((l) => /failed \((\S+)\)/.exec(l.text)![1]);
      expect(retries.length).toBeGreaterThanOrEqual(1);
      expect(new Set(retries)).toEqual(new Set(["ECONNREFUSED"]));
    } finally {
      await app.stop();
    }
  });

  it("the same app off-cluster (no KUBERNETES_SERVICE_HOST) does not wait: CredentialUnavailableError at once", async () => {
    const pod = await cluster.addPod("sdk-offcluster-app", { labels: { aadpodidbinding: "sdk-waits" }, node: node.name });
    await cluster.stopNmi(node.name);
    try {
      const app = new ComponentProcess(
        "sdk-app-offcluster",
        cluster.spawnInPod(pod, process.execPath, [join(FIXTURES, "sdk-client.mjs")], { env: { AZURE_LOG_LEVEL: "info" } }),
      );
      const result = await app.waitForLine("the app's outcome", (l) => l.json !== undefined && "ok" in l.json, 10_000);
      await app.exited;
      expect(result.json).toMatchObject({ ok: false, error: "CredentialUnavailableError", code: "ENDPOINT_UNREACHABLE" });
      expect(app.lines.filter((l) => /retrying/.test(l.text))).toEqual([]);
    } finally {
      await cluster.startNmi(node.name);
    }
  });
});
