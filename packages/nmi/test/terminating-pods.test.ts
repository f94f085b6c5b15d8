import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { UserAssignedIdentity } from "@podidentity/testbed";
import type { Nmi } from "../src/index";
import { Cluster, eventually } from "./helpers/cluster";

let c: Cluster;
let kvReader: UserAssignedIdentity;
const IP = "127.0.21.1";
const STORAGE = "https://storage.azure.com/";
/** Long enough that no grace period ends on its own during a test (the testbed scales 1 s of grace to 100 ms). */
const LONG_GRACE_SECONDS = 600;

beforeEach(async () => {
  c = await Cluster.start();
  kvReader = c.cloud.createUserAssignedIdentity("kv-reader");
});
afterEach(async () => c.close());

/** Pod `name` in shop with `ip`, bound to `identity` through `selector`, assigned on the VM and Assigned. */
function boundPod(name: string, ip: string, identityName: string, uai: UserAssignedIdentity, selector: string): void {
  if (c.kube.getObject("azureidentities.aadpodidentity.k8s.io", "shop", identityName) === undefined) c.identity("shop", identityName, uai, { selector });
  c.pod(name, ip, { namespace: "shop", label: selector });
  c.assigned({ name, namespace: "shop" }, { name: identityName, namespace: "shop" }, "Assigned");
  c.assignOnVm(uai);
}

const deletionTimestampOf = (nmi: Nmi, ip: string): string | undefined => {
  const found = nmi.pods.lookup(ip);
  return found.kind === "pod" ? found.pod.metadata?.deletionTimestamp : undefined;
};

async function startDeleting(nmi: Nmi, name: string, ip: string): Promise<void> {
  c.kube.deleteObject("pods", "shop", name, { gracePeriodSeconds: LONG_GRACE_SECONDS });
  await eventually(() => deletionTimestampOf(nmi, ip), "NMI sees the deletion");
}

describe("a pod in its grace period (deletionTimestamp set, containers running)", () => {
  it("keeps getting its identity's tokens, cached and newly acquired", async () => {
    boundPod("web-1", IP, "kv-reader", kvReader, "web");
    const nmi = await c.startNmi({ podWaitMs: 200 });
    expect((await c.token(IP)).status).toBe(200);
    await startDeleting(nmi, "web-1", IP);
    const cached = await c.token(IP);
    expect(cached.status, cached.text).toBe(200);
    expect(cached.body.client_id).toBe(kvReader.clientId);
    const acquired = await c.token(IP, { resource: STORAGE });
    expect(acquired.status, acquired.text).toBe(200);
    expect(acquired.body.client_id).toBe(kvReader.clientId);
  });

  it("is refused once its containers are reported terminated, once it is Succeeded/Failed, and once it is gone", async () => {
    boundPod("web-1", IP, "kv-reader", kvReader, "web");
    const nmi = await c.startNmi({ podWaitMs: 200 });
    await startDeleting(nmi, "web-1", IP);
    expect((await c.token(IP)).status).toBe(200);

    c.kube.patchObject("pods", "shop", "web-1", { status: { containerStatuses: [{ name: "app", ready: false, restartCount: 0, image: "app:1", imageID: "", state: { terminated: { exitCode: 143, reason: "Error" } } }] } }, { subresource: "status" });
    await eventually(() => (nmi.pods.lookup(IP).kind === "unknown" ? true : undefined), "containers stopped");
    const stopped = await c.token(IP);
    expect(stopped.status).toBe(503);
    expect(stopped.body.error).toBe("podidentity_pod_unknown");

    c.kube.patchObject("pods", "shop", "web-1", { status: { phase: "Failed" } }, { subresource: "status" });
    expect((await c.token(IP)).body.error).toBe("podidentity_pod_unknown");

    c.kube.deleteObject("pods", "shop", "web-1", { gracePeriodSeconds: 0 });
    await eventually(() => (c.kube.getObject("pods", "shop", "web-1") === undefined ? true : undefined), "pod removed");
    expect((await c.token(IP)).body.error).toBe("podidentity_pod_unknown");
  });

  it("a Pending pod being deleted has no running containers and is refused", async () => {
    c.identity("shop", "kv-reader", kvReader, { selector: "web" });
    c.pod("starting", IP, { namespace: "shop", label: "web", phase: "Pending" });
    const nmi = await c.startNmi({ podWaitMs: 200 });
    await eventually(() => (nmi.pods.lookup(IP).kind === "pod" ? true : undefined), "pending pod known");
    c.kube.deleteObject("pods", "shop", "starting", { gracePeriodSeconds: LONG_GRACE_SECONDS });
    await eventually(() => (nmi.pods.lookup(IP).kind === "unknown" ? true : undefined), "refused once terminating");
    expect((await c.token(IP)).body.error).toBe("podidentity_pod_unknown");
  });
});

describe("an IP held by a terminating pod and a new pod at once", () => {
  // The old pod's sandbox (and so its IP) is released before its object leaves the API: the new pod owns the IP.
  for (const order of ["new pod after the deletion", "new pod before the deletion"] as const) {
    it(`the pod not being deleted wins the IP and gets its own identity, never the old pod's (${order})`, async () => {
      const blobWriter = c.cloud.createUserAssignedIdentity("blob-writer");
      boundPod("old", IP, "kv-reader", kvReader, "old");
      const nmi = await c.startNmi({ podWaitMs: 200 });
      expect((await c.token(IP)).body.client_id).toBe(kvReader.clientId);
      if (order === "new pod after the deletion") {
        await startDeleting(nmi, "old", IP);
        boundPod("new", IP, "blob-writer", blobWriter, "new");
      } else {
        boundPod("new", IP, "blob-writer", blobWriter, "new");
        await eventually(() => (c.kube.getObject("pods", "shop", "new") ? true : undefined), "new pod stored");
        c.kube.deleteObject("pods", "shop", "old", { gracePeriodSeconds: LONG_GRACE_SECONDS });
      }
      await eventually(() => {
        const found = nmi.pods.lookup(IP);
        return found.kind === "pod" && found.pod.metadata?.name === "new" ? true : undefined;
      }, "the new pod owns the IP");
      const r = await c.token(IP, { resource: STORAGE });
      expect(r.status, r.text).toBe(200);
      expect(r.body.client_id).toBe(blobWriter.clientId);
      const asOld = await c.token(IP, { resource: STORAGE, client_id: kvReader.clientId });
      expect(asOld.status).toBe(403);
      expect(asOld.body.error).toBe("podidentity_not_bound");
    });
  }
});
