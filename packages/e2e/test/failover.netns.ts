// MIC's leader election with two real replicas (aad-pod-identity v1.8 e2e "disruptive"): killing the leader in the
// middle of an assignment leaves the standby to take the Lease and finish it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { INSTALL_NAMES } from "@podidentity/install";
import { E2eCluster, micInstance } from "../src/e2e-cluster";
import { curlInPod, tokenUrl } from "./helpers/pod-clients";

describe("MIC leader election (two replicas)", () => {
  let cluster: E2eCluster;

  beforeAll(async () => {
    // a short Lease so the standby takes over in seconds (default 15 s)
    cluster = await E2eCluster.start({ micArgs: ["--leader-election-duration", "3s"], operationDurationMs: 2_000 });
    await cluster.startMic([], { standby: true });
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it("the leader is killed (SIGKILL) while an assignment is in progress: the standby takes the Lease and the pod's identity ends Assigned and works", async () => {
    const lease = (): Promise<{ spec?: Record<string, unknown> }> => cluster.admin.get(`/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/${INSTALL_NAMES.leaseName}`);
    expect((await lease()).spec?.["holderIdentity"]).toBe(micInstance(0));

    const id = await cluster.bindIdentity(cluster.createIdentity("failover-id"), { selector: "failover" });
    const pod = await cluster.addPod("failover-app", { labels: { aadpodidbinding: "failover" } });
    await cluster.assigned.forPod(pod, id.name, "Created");
    const leader = cluster.mics[0]!;
    leader.child.kill("SIGKILL");
    await leader.exited;

    await cluster.assigned.forPod(pod, id.name, "Assigned", 40_000);
    expect((await lease()).spec?.["holderIdentity"]).toBe(micInstance(1));
    const r = await curlInPod(cluster, pod, tokenUrl());
    expect(r.status, r.body).toBe(200);
    expect(r.json?.["client_id"]).toBe(id.azure.clientId);
    // the identity is on the scale set, whichever replica's PATCH put it there
    expect(cluster.arm.callsTo("PATCH", /virtualMachineScaleSets/i).length).toBeGreaterThan(0);
    expect([...cluster.scaleSet.userAssigned.keys()].map((k) => k.toLowerCase())).toContain(id.azure.id.toLowerCase());
  });
});
