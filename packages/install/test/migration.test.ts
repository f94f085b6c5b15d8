import { resolve } from "node:path";
import {
  ASSIGNED_IDENTITY_FINALIZER,
  matchPodIdentities,
  normalizeAzureIdentity,
  normalizeAzureIdentityBinding,
  type AzureIdentity,
  type AzureIdentityBinding,
} from "@podidentity/api";
import { afterEach, describe, expect, it } from "vitest";
import { renderInstallYaml } from "../src/index";
import { startTestCluster, type TestCluster } from "./helpers/cluster";
import { findKubectl } from "@podidentity/testbed";

const ROOT = resolve(import.meta.dirname, "../../..");
const FIXTURES = resolve(import.meta.dirname, "fixtures");
const kubectl = findKubectl();
const ci = process.env["CI"] === "true";
const CR = (plural: string): string => `${plural}.aadpodidentity.k8s.io`;
const CUSTOM_RESOURCES = ["azureidentities", "azureidentitybindings", "azureassignedidentities", "azurepodidentityexceptions"].map(CR);

type Obj = { metadata: { name: string; namespace: string; resourceVersion: string; finalizers?: string[] }; spec: Record<string, unknown> };

/** An AzureAssignedIdentity as v1.8's MIC wrote it: in `default`, named <pod>-<podNs>-<identity>, its finalizer, Assigned. */
function v18AssignedIdentity(identity: Obj, binding: Obj) {
  return {
    apiVersion: "aadpodidentity.k8s.io/v1",
    kind: "AzureAssignedIdentity",
    metadata: {
      name: "demo-shop-podidentitydemouser",
      namespace: "default",
      labels: { nodename: "aks-nodepool1-12345678-vmss000000" },
      finalizers: [ASSIGNED_IDENTITY_FINALIZER],
    },
    spec: {
      azureIdentityRef: { apiVersion: "aadpodidentity.k8s.io/v1", kind: "AzureIdentity", metadata: { name: identity.metadata.name, namespace: identity.metadata.namespace }, spec: identity.spec },
      azureBindingRef: { apiVersion: "aadpodidentity.k8s.io/v1", kind: "AzureIdentityBinding", metadata: { name: binding.metadata.name, namespace: binding.metadata.namespace }, spec: binding.spec },
      pod: "demo",
      podNamespace: "shop",
      nodename: "aks-nodepool1-12345678-vmss000000",
      replicas: 1,
    },
    status: { status: "Assigned", availableReplicas: 1 },
  };
}

describe.skipIf(!kubectl && !ci)("migration from aad-pod-identity v1.8 (docs/install.md), with kubectl", () => {
  let cluster: TestCluster | undefined;
  afterEach(async () => {
    await cluster?.close();
    cluster = undefined;
  });

  it("scale v1.8's MIC to zero, apply our CRDs and manifests: everything applies, and v1.8's objects are untouched and still match", async () => {
    if (!kubectl) throw new Error("kubectl not found: set KUBECTL, put kubectl on PATH, or run scripts/ensure-kubectl.sh");
    const c = (cluster = await startTestCluster(kubectl));
    const ok = async (...args: string[]): Promise<string> => {
      const r = await c.kubectl(...args);
      expect(r.code, `kubectl ${args.join(" ")}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };

    // Before: a v1.8 installation with the seeds' objects (legacy keys) and an assignment v1.8's MIC made.
    await ok("apply", "-f", resolve(FIXTURES, "aad-pod-identity-v1.8.yaml"));
    await ok("apply", "-f", resolve(FIXTURES, "v1.8-user-objects.yaml"));
    await ok("create", "namespace", "shop");
    const identity = c.server.getObject(CR("azureidentities"), "aad-broker", "podidentitydemouser") as Obj;
    const binding = c.server.getObject(CR("azureidentitybindings"), "aad-broker", "podidentitydemouser-binding") as Obj;
    expect(identity.spec).toMatchObject({ ResourceID: expect.any(String), ClientID: "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b" });
    c.server.seed(v18AssignedIdentity(identity, binding));
    const before = CUSTOM_RESOURCES.flatMap((r) => c.server.listObjects(r));
    expect(before).toHaveLength(6);

    // 1. v1.8's MIC to zero: its Endpoints lock and our Lease are different locks, so both would lead.
    //    (docs: `kubectl scale deployment mic --replicas=0`; the testbed serves no /scale subresource, so patch.)
    await ok("-n", "default", "patch", "deployment", "mic", "--type=merge", "-p", '{"spec":{"replicas":0}}');
    expect((c.server.getObject("deployments.apps", "default", "mic") as { spec: { replicas: number } }).spec.replicas).toBe(0);

    // 2. Our CRDs over v1.8's: same names, so they are updated in place.
    const crds = await ok("apply", "-f", resolve(ROOT, "deploy/crds/crds.yaml"));
    expect(crds.trim().split("\n")).toEqual(CUSTOM_RESOURCES.map((r) => `customresourcedefinition.apiextensions.k8s.io/${r} configured`));

    // 3. Our manifests, keeping v1.8's cross-namespace matching for the aad-broker pattern.
    const install = await ok("apply", "-f", await c.file("podidentity.yaml", renderInstallYaml({ forceNamespaced: false })));
    expect(install).toContain("deployment.apps/podidentity-mic created");
    expect(install).toContain("daemonset.apps/podidentity-nmi created");

    // 4. v1.8's NMI goes (ours takes the node ports), then v1.8's leftovers.
    await ok("-n", "default", "delete", "daemonset", "nmi");
    await ok("-n", "default", "delete", "deployment", "mic");
    await ok("delete", "clusterrolebinding", "aad-pod-id-mic-binding", "aad-pod-id-nmi-binding");
    await ok("delete", "clusterrole", "aad-pod-id-mic-role", "aad-pod-id-nmi-role");
    await ok("-n", "default", "delete", "serviceaccount", "aad-pod-id-mic-service-account", "aad-pod-id-nmi-service-account");

    // Every custom resource is byte-for-byte what it was: same resourceVersion, legacy keys, finalizer, status.
    const after = CUSTOM_RESOURCES.flatMap((r) => c.server.listObjects(r));
    expect(after.filter((o) => before.some((b) => (b as Obj).metadata.name === (o as Obj).metadata.name && (b as Obj).metadata.namespace === (o as Obj).metadata.namespace))).toEqual(before);
    const aai = c.server.getObject(CR("azureassignedidentities"), "default", "demo-shop-podidentitydemouser") as Obj & { status: { status: string } };
    expect(aai.metadata.finalizers).toEqual([ASSIGNED_IDENTITY_FINALIZER]);
    expect(aai.status.status).toBe("Assigned");

    // The legacy-key objects still read as before, and with --force-namespaced=false a shop pod labelled
    // demo-kv-access maps to exactly the AzureAssignedIdentity v1.8 created — MIC adopts it, no duplicate.
    const id = normalizeAzureIdentity(c.server.getObject(CR("azureidentities"), "aad-broker", "podidentitydemouser"));
    const b = normalizeAzureIdentityBinding(c.server.getObject(CR("azureidentitybindings"), "aad-broker", "podidentitydemouser-binding"));
    expect(id.ok && b.ok).toBe(true);
    expect(id.object.spec.clientID).toBe("5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b");
    const pod = { metadata: { name: "demo", namespace: "shop", labels: { aadpodidbinding: "demo-kv-access" } } };
    const match = (forceNamespaced: boolean) => matchPodIdentities(pod, [b.object as AzureIdentityBinding], [id.object as AzureIdentity], { forceNamespaced });
    expect(match(false).matches.map((m) => `${m.assignedIdentityNamespace}/${m.assignedIdentityName}`)).toEqual(["default/demo-shop-podidentitydemouser"]);
    // …and why the flag matters: namespaced matching would not serve the aad-broker binding to a shop pod.
    expect(match(true).matches).toEqual([]);

    // Users re-applying their old manifests after the migration: accepted, legacy keys kept (our CRDs declare them).
    const reapply = await ok("apply", "-f", resolve(FIXTURES, "v1.8-user-objects.yaml"));
    expect(reapply).toContain("azureidentity.aadpodidentity.k8s.io/podidentitydemouser unchanged");
    expect((c.server.getObject(CR("azureidentities"), "aad-broker", "podidentitydemouser") as Obj).spec["ClientID"]).toBe("5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b");
    const listed = await ok("get", "azureassignedidentities", "-A");
    expect(listed).toMatch(/default\s+demo-shop-podidentitydemouser\s+demo\s+aks-nodepool1-12345678-vmss000000\s+Assigned/);
  });
});
