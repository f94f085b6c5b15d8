// A misconfigured identity fails fast with ARM's reason and recovers when fixed (issue 15, item 3). An AzureIdentity
// names a user-assigned identity that does not exist: ARM refuses MIC's PATCH (FailedIdentityOperation, inner
// NotFound), MIC writes ARM's code and message on the AzureAssignedIdentity's status.error, and NMI answers the
// pod's first request at once with 403 podidentity_assignment_failed instead of holding it: the SDK raises
// CredentialUnavailableError after one request, and `podidentity doctor` names the object to describe. Pointing the
// AzureIdentity at an existing identity makes the next request succeed.
import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { TopologyNode, TopologyPod } from "@podidentity/testbed";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { E2eCluster } from "../src/e2e-cluster";
import { runNodeClient } from "./helpers/pod-clients";

const SDK_BIN = join(dirname(createRequire(import.meta.url).resolve("@podidentity/sdk")), "..", "bin", "podidentity");

describe("an AzureIdentity naming an identity that does not exist", () => {
  let cluster: E2eCluster;
  let node: TopologyNode;

  beforeAll(async () => {
    cluster = await E2eCluster.start();
    node = cluster.node(0);
  });
  afterAll(async () => {
    await cluster?.close();
  });

  /** NMI's own counters on the pod's node (cumulative over the file): requests it held, and its answers with `code`. */
  async function nmiCounters(code: string): Promise<{ held: number; answered: number }> {
    return {
      held: await cluster.nmiCounter(node, "podidentity_nmi_pending_waits_total"),
      answered: await cluster.nmiCounter(node, "podidentity_nmi_requests_total", (l) => l.includes(`code="${code}"`)),
    };
  }

  it("fails at once with ARM's message in the app, NMI's answer and doctor, and recovers when the AzureIdentity is fixed", async () => {
    const real = cluster.createIdentity("fixed-later");
    const ghostId = real.id.replace(/\/fixed-later$/, "/does-not-exist");
    const bound = await cluster.bindIdentity({ ...real, id: ghostId, clientId: randomUUID() }, { name: "typo", selector: "typo", legacyKeys: false });
    const pod: TopologyPod = await cluster.addPod("typo-app", { labels: { aadpodidbinding: "typo" }, node: node.name });

    // MIC records ARM's refusal on the AzureAssignedIdentity (status stays Created for v1.8 readers).
    const failed = await cluster.assigned.until("status.error on the pod's AzureAssignedIdentity", (objects) =>
      objects.find((o) => o.pod === pod.name && (o.object as { status?: { error?: unknown } }).status?.error !== undefined),
    );
    expect(failed.state).toBe("Created");
    const error = (failed.object as { status: { error: { code: string; message: string } } }).status.error;
    expect(error.code).toBe("FailedIdentityOperation");
    expect(error.message).toContain(`Resource '${ghostId.toLowerCase()}' was not found.`);

    const before = await nmiCounters("podidentity_assignment_failed");
    const since = performance.now();
    const outcome = await runNodeClient(cluster, pod, "sdk-client.mjs");
    expect(outcome, outcome.message).toMatchObject({ ok: false, error: "CredentialUnavailableError", code: "IDENTITY_UNAVAILABLE", statusCode: 403 });
    expect(outcome.message).toContain("403 podidentity_assignment_failed");
    expect(outcome.message).toContain(`ARM answered FailedIdentityOperation`);
    expect(outcome.message).toContain("was not found.");
    // One request, answered by NMI with the code, never held as a pending assignment.
    await cluster.nmiAnswered(pod, { route: "token", status: 403, code: "podidentity_assignment_failed", since });
    expect(cluster.nmiRequestsFrom(pod.ip!).filter((l) => l["route"] === "token")).toHaveLength(1);
    const after = await nmiCounters("podidentity_assignment_failed");
    expect(after.answered - before.answered).toBe(1);
    expect(after.held).toBe(before.held);

    const doctor = await cluster.runInPod(pod, process.execPath, [SDK_BIN, "doctor"], { timeoutMs: 45_000 });
    expect(doctor.code, doctor.stdout + doctor.stderr).toBe(1);
    expect(doctor.stdout).toContain("FAILED IDENTITY_UNAVAILABLE (403 podidentity_assignment_failed)");
    expect(doctor.stdout).toContain("was not found.");
    expect(doctor.stdout).toContain(`  run: kubectl describe azureassignedidentity ${failed.name} -n ${failed.namespace}`);

    // The fix: point the AzureIdentity at the identity that exists. MIC replaces the assignment; the next request succeeds.
    await cluster.admin.patch(`/apis/aadpodidentity.k8s.io/v1/namespaces/${bound.namespace}/azureidentities/${bound.name}`, {
      spec: { resourceID: real.id, clientID: real.clientId },
    });
    const fixed = await runNodeClient(cluster, pod, "sdk-client.mjs");
    expect(fixed, fixed.message).toMatchObject({ ok: true, claims: { appid: real.clientId, aud: "https://vault.azure.net" } });
    const assigned = await cluster.assigned.forPod(pod, bound.name, "Assigned");
    expect((assigned.object as { status?: { error?: unknown } }).status?.error).toBeUndefined();
  });
});
