import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import {
  API_GROUP_VERSION,
  ASSIGNED_IDENTITY_FINALIZER,
  NODENAME_LABEL,
  assignedIdentityName,
  customResourceDefinitions,
} from "@podidentity/api";
import { AzureCloud, RealKubeApiServer, realKubeUnavailableReason, type ComputeResource, type ImdsServer, type KubeObject, type UserAssignedIdentity } from "@podidentity/testbed";
import pino from "pino";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { KubeClient, Nmi } from "../src/index";

// NMI on a real kube-apiserver (1.20, scripts/ensure-kube-apiserver.sh) as its own service account, with nothing but
// the RBAC objects of the checked-in rendering (deploy/podidentity-standard.yaml, kept equal to the installer's
// output by packages/install/test/deploy-drift.test.ts), enforced by the real authorizer. Locally without the real
// server the suite is skipped with the reason; under CI=true it fails.
const ROOT = resolve(import.meta.dirname, "../../..");
const NMI_USER = "system:serviceaccount:kube-system:podidentity-nmi";
const NODE = "aks-nodepool1-vmss000000";
const KV = "https://vault.azure.net";
const RBAC_KINDS = new Set(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]);
const unavailable = realKubeUnavailableReason();
const ci = process.env["CI"] === "true";

describe.skipIf(unavailable !== undefined && !ci)(`NMI on a real kube-apiserver with the rendered RBAC${unavailable ? ` (${unavailable})` : ""}`, () => {
  let cloud: AzureCloud;
  let server: RealKubeApiServer;
  let vmss: ComputeResource;
  let imds: ImdsServer;
  let web: UserAssignedIdentity;
  let other: UserAssignedIdentity;
  let kube: KubeClient;
  let nmi: Nmi;
  const agents = new Map<string, Agent>();

  const seed = (o: Record<string, unknown>) => server.seed(o as KubeObject);
  const pod = (namespace: string, name: string, ip: string, labels: Record<string, string>) =>
    seed({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace, labels },
      spec: { nodeName: NODE, containers: [{ name: "app", image: "app:1" }] },
      status: { phase: "Running", podIP: ip, podIPs: [{ ip }] },
    });
  /** What MIC writes for (pod, identity) once the identity is on the node's VMSS. */
  const assigned = async (namespace: string, podName: string, identity: string) => {
    const ref = await server.getObject("azureidentities.aadpodidentity.k8s.io", namespace, identity);
    await seed({
      apiVersion: API_GROUP_VERSION,
      kind: "AzureAssignedIdentity",
      metadata: { name: assignedIdentityName(podName, namespace, identity), namespace, labels: { [NODENAME_LABEL]: NODE }, finalizers: [ASSIGNED_IDENTITY_FINALIZER] },
      spec: { pod: podName, podNamespace: namespace, nodename: NODE, azureIdentityRef: ref },
      status: { status: "Assigned" },
    });
  };
  const token = async (ip: string, query: Record<string, string> = {}) => {
    let agent = agents.get(ip);
    if (!agent) agents.set(ip, (agent = new Agent({ localAddress: ip })));
    const qs = new URLSearchParams({ "api-version": "2018-02-01", resource: KV, ...query });
    const res = await request(`${nmi.url}/metadata/identity/oauth2/token?${qs}`, { headers: { metadata: "true" }, dispatcher: agent });
    return { status: res.statusCode, body: (await res.body.json()) as Record<string, string> };
  };

  beforeAll(async () => {
    if (unavailable) throw new Error(unavailable);
    cloud = await AzureCloud.create();
    server = new RealKubeApiServer({ tls: cloud.ca, tokens: { "nmi-token": NMI_USER } });
    await server.start();
    for (const crd of customResourceDefinitions()) await seed(crd as unknown as Record<string, unknown>);
    const rendered = parseAllDocuments(readFileSync(resolve(ROOT, "deploy/podidentity-standard.yaml"), "utf8")).map((d) => d.toJS() as Record<string, unknown> | null);
    for (const o of rendered) if (o && RBAC_KINDS.has(String(o["kind"]))) await seed(o);
    // CRDs become servable a moment after creation on a real server.
    const deadline = Date.now() + 30_000;
    while (!(await server.listObjects("azureidentities.aadpodidentity.k8s.io").then(() => true, () => false))) {
      if (Date.now() > deadline) throw new Error("the CRDs were not served within 30 s");
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const ns of ["shop", "other"]) await seed({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
    await seed({ apiVersion: "v1", kind: "Node", metadata: { name: NODE }, spec: { providerID: "azure:///subscriptions/x/resourceGroups/y/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-vmss/virtualMachines/0" } });

    vmss = cloud.addScaleSet("aks-nodepool1-vmss");
    imds = await cloud.startImds(NODE, vmss);
    web = cloud.createUserAssignedIdentity("web");
    other = cloud.createUserAssignedIdentity("other");
    for (const uai of [web, other]) {
      const r = vmss.applyIdentityPatch({ type: "UserAssigned", userAssignedIdentities: { [uai.id]: {} } }, cloud.registry, { effectiveAtMs: cloud.clock.now() });
      if (r.notFound.length > 0) throw new Error(`identity not found: ${r.notFound.join(",")}`);
    }
    await seed({ apiVersion: API_GROUP_VERSION, kind: "AzureIdentity", metadata: { name: "web", namespace: "shop" }, spec: { type: 0, resourceID: web.id, clientID: web.clientId } });
    await seed({ apiVersion: API_GROUP_VERSION, kind: "AzureIdentityBinding", metadata: { name: "web", namespace: "shop" }, spec: { azureIdentity: "web", selector: "web" } });
    await seed({ apiVersion: API_GROUP_VERSION, kind: "AzureIdentity", metadata: { name: "central", namespace: "other" }, spec: { type: 0, resourceID: other.id, clientID: other.clientId } });
    await seed({ apiVersion: API_GROUP_VERSION, kind: "AzureIdentityBinding", metadata: { name: "central", namespace: "other" }, spec: { azureIdentity: "central", selector: "central" } });
    await seed({ apiVersion: API_GROUP_VERSION, kind: "AzurePodIdentityException", metadata: { name: "bypass", namespace: "shop" }, spec: { podLabels: { app: "bypass" } } });
    await pod("shop", "web-0", "127.0.31.1", { aadpodidbinding: "web" });
    await assigned("shop", "web-0", "web");
    await pod("shop", "central-0", "127.0.31.2", { aadpodidbinding: "central" });
    await pod("shop", "bypass-0", "127.0.31.3", { app: "bypass" });

    kube = KubeClient.fromKubeconfig(server.kubeconfig({ user: NMI_USER }));
    nmi = new Nmi({
      kube,
      nodeName: NODE,
      port: 0,
      httpProbePort: 0,
      prometheusPort: 0,
      upstreamImds: imds.url,
      interception: null,
      checkNetworkPlugin: false,
      nodeAddresses: ["127.0.0.1"],
      waitForAssignmentMs: 2_000,
      logger: pino({ level: process.env["NMI_TEST_LOG"] ?? "silent" }),
    });
    await nmi.start();
  }, 120_000);

  afterAll(async () => {
    await nmi?.stop().catch(() => undefined);
    await kube?.close();
    await Promise.all([...agents.values()].map((a) => a.close()));
    await server?.close();
    await cloud?.close();
  });

  it("serves the token of the pod's assigned identity, reading pods and CRDs as podidentity-nmi", async () => {
    const r = await token("127.0.31.1");
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body["client_id"]).toBe(web.clientId);
  });

  it("refuses a binding from another namespace (namespaced matching) with podidentity_no_binding", async () => {
    const r = await token("127.0.31.2");
    expect(r.status).toBe(403);
    expect(r.body["error"]).toBe("podidentity_no_binding");
  });

  it("passes a pod matching an AzurePodIdentityException straight to the node's IMDS", async () => {
    const r = await token("127.0.31.3", { client_id: other.clientId });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body["client_id"]).toBe(other.clientId);
  });

  it("holds no more rights than rendered: the real authorizer refuses NMI writes to assignments and reads of Secrets", async () => {
    const nmiRest = server.client(NMI_USER);
    await expect(nmiRest.call("GET", "/api/v1/namespaces/shop/secrets/x")).rejects.toMatchObject({ details: { statusCode: 403 } });
    await expect(
      nmiRest.call("DELETE", `/apis/aadpodidentity.k8s.io/v1/namespaces/shop/azureassignedidentities/${assignedIdentityName("web-0", "shop", "web")}`),
    ).rejects.toMatchObject({ details: { statusCode: 403 } });
  });
});
