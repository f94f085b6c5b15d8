import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { API_GROUP_VERSION, customResourceDefinitions } from "@podidentity/api";
import { AzureCloud, KubeApiServer, type KubeObject } from "@podidentity/testbed";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkRbacCoverage, INSTALL_NAMES, renderManifests, rulesForServiceAccount } from "../src/index";
import { commandLine, freePort, MIC_MAIN, until } from "./helpers/mic-process";

const NS = "kube-system";
const MIC_USER = `system:serviceaccount:${NS}:${INSTALL_NAMES.mic}`;

const ci = process.env["CI"] === "true";

// MIC is a devDependency, so turbo builds it before this suite; a local run without a build skips it, CI fails.
// The e2e suite repeats this for MIC and NMI on network-namespace nodes.
// Here RBAC is checked against the emulator's request log; test/real-kube.test.ts has the real authorizer enforce it.
describe.skipIf(!existsSync(MIC_MAIN) && !ci)("MIC started with the rendered command line, as its service account", () => {
  let cloud: AzureCloud;
  let kube: KubeApiServer;
  let dir: string;
  let mic: ChildProcess | undefined;
  let output = "";

  beforeAll(async () => {
    if (!existsSync(MIC_MAIN)) throw new Error(`${MIC_MAIN} does not exist: build @podidentity/mic first`);
    cloud = await AzureCloud.create();
    const arm = await cloud.startArm({ operationDurationMs: 200, propagationDelayMs: 0, pollRetryAfterSeconds: 1 });
    const entra = await cloud.startEntra();
    const app = cloud.addServicePrincipal({ secrets: ["mic-secret"] });
    kube = new KubeApiServer({ tls: cloud.ca, tokens: { "mic-token": MIC_USER } });
    await kube.start();
    for (const crd of customResourceDefinitions()) kube.seed(crd as unknown as KubeObject);

    // A node on a scale set, an identity with its binding, and a pod that selects it.
    const vmss = cloud.addScaleSet("aks-nodepool1-vmss");
    const identity = cloud.createUserAssignedIdentity("web-identity");
    kube.seed({ apiVersion: "v1", kind: "Namespace", metadata: { name: "shop" } });
    kube.seed({ apiVersion: "v1", kind: "Node", metadata: { name: "aks-nodepool1-vmss000000" }, spec: { providerID: `azure://${vmss.id}/virtualMachines/0` } });
    kube.seed({ apiVersion: API_GROUP_VERSION, kind: "AzureIdentity", metadata: { name: "web", namespace: "shop" }, spec: { type: 0, resourceID: identity.id, clientID: identity.clientId } } as KubeObject);
    kube.seed({ apiVersion: API_GROUP_VERSION, kind: "AzureIdentityBinding", metadata: { name: "web", namespace: "shop" }, spec: { azureIdentity: "web", selector: "web" } } as KubeObject);
    kube.seed({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "web-0", namespace: "shop", labels: { aadpodidbinding: "web" } },
      spec: { nodeName: "aks-nodepool1-vmss000000", containers: [{ name: "app", image: "app:1" }] },
      status: { phase: "Running" },
    } as KubeObject);

    dir = await mkdtemp(join(tmpdir(), "mic-rbac-"));
    await kube.writeKubeconfig(join(dir, "kubeconfig"), { user: MIC_USER });
    await writeFile(join(dir, "ca.pem"), cloud.ca.certPem);
    await writeFile(
      join(dir, "azure.json"),
      JSON.stringify({ cloud: "AzurePublicCloud", tenantId: cloud.tenantId, aadClientId: app.appId, aadClientSecret: "mic-secret", subscriptionId: cloud.subscriptionId, resourceGroup: cloud.resourceGroup, vmType: "vmss" }),
    );

    const deployment = renderManifests().find((m) => m.kind === "Deployment") as IDeployment;
    const env = { MIC_POD_NAMESPACE: NS, POD_NAME: "podidentity-mic-7d9f-0" };
    const args = commandLine(deployment.spec!.template.spec!.containers[0]!.args!, env, {
      "--cloudconfig": join(dir, "azure.json"),
      "--kubeconfig": join(dir, "kubeconfig"),
      "--arm-endpoint": arm.url,
      "--authority-host": entra.url,
      "--http-probe-port": String(await freePort()),
      "--prometheus-port": String(await freePort()),
    });
    mic = spawn(process.execPath, [MIC_MAIN, ...args], {
      env: { PATH: process.env["PATH"] ?? "", ...env, NODE_EXTRA_CA_CERTS: join(dir, "ca.pem"), LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    mic.stdout?.on("data", (d: Buffer) => (output += d.toString()));
    mic.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  }, 60_000);

  afterAll(async () => {
    if (mic && mic.exitCode === null) {
      const exited = new Promise((r) => mic!.once("exit", r));
      mic.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
      if (mic.exitCode === null) mic.kill("SIGKILL");
    }
    await kube?.close();
    await cloud?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("leads through the Lease in its namespace and assigns the pod's identity; RBAC allows every request it made", { timeout: 60_000 }, async () => {
    const assigned = await until(() => {
      if (mic?.exitCode !== null) throw new Error(`MIC exited (${mic?.exitCode}): ${output}`);
      const aai = kube.listObjects("azureassignedidentities.aadpodidentity.k8s.io")[0] as { status?: { status?: string } } | undefined;
      return aai?.status?.status === "Assigned" ? aai : undefined;
    }, "an Assigned AzureAssignedIdentity");
    expect(assigned).toMatchObject({ metadata: { name: "web-0-shop-web", namespace: "shop" } });
    const lease = kube.getObject("leases.coordination.k8s.io", NS, INSTALL_NAMES.leaseName) as { spec: { holderIdentity: string } } | undefined;
    expect(lease?.spec.holderIdentity).toBe("podidentity-mic-7d9f-0");

    const used = kube.requestCounts({ user: MIC_USER });
    const rules = rulesForServiceAccount(renderManifests(), NS, INSTALL_NAMES.mic);
    const coverage = checkRbacCoverage(
      kube.requests.filter((r) => r.user === MIC_USER && r.verb !== undefined && r.resource !== undefined).map((r) => ({ verb: r.verb!, group: r.group ?? "", resource: r.resource!, subresource: r.subresource, namespace: r.namespace, name: r.name })),
      rules,
    );
    expect(coverage.denied, JSON.stringify(used)).toEqual([]);
    expect(Object.keys(used)).toEqual(expect.arrayContaining(["list pods", "watch pods", "create azureassignedidentities", "create leases"]));
  });

  it("SIGTERM: MIC releases the Lease, so a standby takes over at once, and exits 0; RBAC allowed the release", { timeout: 60_000 }, async () => {
    const exited = new Promise<number | null>((r) => mic!.once("exit", (code) => r(code)));
    mic!.kill("SIGTERM");
    expect(await exited, output).toBe(0);
    const lease = kube.getObject("leases.coordination.k8s.io", NS, INSTALL_NAMES.leaseName) as { spec: { holderIdentity?: string | null } };
    expect(lease.spec.holderIdentity ?? null).toBeNull();
    const releases = kube.requests.filter((r) => r.user === MIC_USER && r.verb === "update" && r.resource === "leases");
    expect(releases.at(-1)?.status).toBe(200);
    expect(output).not.toMatch(/"level":(50|60)/);
  });
});
