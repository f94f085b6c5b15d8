import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { API_GROUP_VERSION } from "@podidentity/api";
import {
  AzureCloud,
  findKubectl,
  kubectlRunner,
  RealKubeApiServer,
  realKubeUnavailableReason,
  type ComputeResource,
  type KubectlResult,
  type KubeObject,
  type UserAssignedIdentity,
} from "@podidentity/testbed";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import { INSTALL_NAMES } from "../src/index";
import { MIC_MAIN, startMicProcess, until, type MicProcess } from "./helpers/mic-process";

// The product on a real kube-apiserver (1.20, scripts/ensure-kube-apiserver.sh) with RBAC enforced by the real
// authorizer: the rendered manifests are applied with kubectl, then MIC (two processes with the Deployment's command
// line) runs as its own service account with nothing but the rendered Roles (NMI: packages/nmi/test/real-kube.test.ts). Locally without the real
// server, kubectl or a MIC build the suite is skipped with the reason; under CI=true it fails.
const ROOT = resolve(import.meta.dirname, "../../..");
const NS = "kube-system";
const MIC_USER = `system:serviceaccount:${NS}:${INSTALL_NAMES.mic}`;
const NMI_USER = `system:serviceaccount:${NS}:${INSTALL_NAMES.nmi}`;
const NODE = "aks-nodepool1-vmss000000";
const AAI = "azureassignedidentities.aadpodidentity.k8s.io";
const unavailable = realKubeUnavailableReason() ?? (existsSync(MIC_MAIN) ? undefined : `${MIC_MAIN} does not exist: build @podidentity/mic first`);
const kubectl = findKubectl();
const ci = process.env["CI"] === "true";

/** The standard rendering without its PodDisruptionBudget: policy/v1 is served from 1.21 on, this server is 1.20. */
function splitPdb(yaml: string): { rest: string; pdb: string } {
  const docs = parseAllDocuments(yaml).map((d) => d.toJS() as KubeObject | null).filter((o): o is KubeObject => o !== null);
  const isPdb = (o: KubeObject): boolean => o["kind"] === "PodDisruptionBudget";
  const text = (objs: KubeObject[]): string => objs.map((o) => stringify(o)).join("---\n");
  return { rest: text(docs.filter((o) => !isPdb(o))), pdb: text(docs.filter(isPdb)) };
}

describe.skipIf((unavailable !== undefined || kubectl === undefined) && !ci)(
  `podidentity on a real kube-apiserver with RBAC${unavailable ? ` (${unavailable})` : ""}`,
  () => {
    let cloud: AzureCloud;
    let server: RealKubeApiServer;
    let vmss: ComputeResource;
    let web: UserAssignedIdentity;
    let dir: string;
    let run: (...args: string[]) => Promise<KubectlResult>;
    const mics: MicProcess[] = [];

    beforeAll(async () => {
      if (unavailable) throw new Error(unavailable);
      if (!kubectl) throw new Error("kubectl not found: set KUBECTL, put kubectl on PATH, or run scripts/ensure-kubectl.sh");
      cloud = await AzureCloud.create();
      server = new RealKubeApiServer({ tls: cloud.ca, tokens: { "mic-token": MIC_USER, "nmi-token": NMI_USER } });
      await server.start();
      vmss = cloud.addScaleSet("aks-nodepool1-vmss");
      web = cloud.createUserAssignedIdentity("web-identity");
      dir = await mkdtemp(join(tmpdir(), "real-kube-install-"));
      await server.writeKubeconfig(join(dir, "admin.kubeconfig"));
      run = kubectlRunner(kubectl, join(dir, "admin.kubeconfig"), join(dir, "cache"), 90_000);
    }, 120_000);

    afterAll(async () => {
      await Promise.all(mics.map((m) => m.stop()));
      await server?.close();
      await cloud?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it("kubectl applies the CRDs and the rendered manifests (all but the policy/v1 PDB, unserved by 1.20); a second apply changes nothing", { timeout: 120_000 }, async () => {
      const crds = await run("apply", "-f", resolve(ROOT, "deploy/crds/crds.yaml"));
      expect(crds.code, crds.stderr).toBe(0);
      expect(crds.stdout.trim().split("\n")).toHaveLength(4);
      const established = await run("wait", "--for=condition=established", "--timeout=60s", "crd", "--all");
      expect(established.code, established.stderr).toBe(0);

      const { rest, pdb } = splitPdb(readFileSync(resolve(ROOT, "deploy/podidentity-standard.yaml"), "utf8"));
      await writeFile(join(dir, "install.yaml"), rest);
      await writeFile(join(dir, "pdb.yaml"), pdb);
      const first = await run("apply", "-f", join(dir, "install.yaml"));
      expect(first.code, first.stderr).toBe(0);
      const lines = first.stdout.trim().split("\n");
      expect(lines.every((l) => l.endsWith(" created")), first.stdout).toBe(true);
      expect(lines).toEqual(expect.arrayContaining(["clusterrole.rbac.authorization.k8s.io/podidentity-mic created", "daemonset.apps/podidentity-nmi created"]));
      const again = await run("apply", "-f", join(dir, "install.yaml"));
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout.trim().split("\n").filter((l) => !l.endsWith(" unchanged"))).toEqual([]);

      const skew = await run("apply", "-f", join(dir, "pdb.yaml"));
      expect(skew.code).not.toBe(0);
      expect(skew.stderr).toMatch(/no matches for kind "PodDisruptionBudget" in version "policy\/v1"/);
    });

    it("the real authorizer grants each service account exactly what the rendered Roles say", { timeout: 30_000 }, async () => {
      const can = async (user: string, attrs: Record<string, string>): Promise<boolean> => {
        const review = await server.client(user).call("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {
          apiVersion: "authorization.k8s.io/v1",
          kind: "SelfSubjectAccessReview",
          spec: { resourceAttributes: attrs },
        });
        return (review["status"] as { allowed?: boolean }).allowed === true;
      };
      const aad = "aadpodidentity.k8s.io";
      const cases: Array<[string, Record<string, string>, boolean]> = [
        [MIC_USER, { verb: "watch", resource: "pods" }, true],
        [MIC_USER, { verb: "create", resource: "azureassignedidentities", group: aad, namespace: "shop" }, true],
        [MIC_USER, { verb: "patch", resource: "azureidentities", subresource: "status", group: aad, namespace: "shop" }, true],
        [MIC_USER, { verb: "update", resource: "azureidentities", group: aad, namespace: "shop" }, false],
        [MIC_USER, { verb: "get", resource: "secrets", namespace: NS }, false],
        [MIC_USER, { verb: "list", resource: "azurepodidentityexceptions", group: aad }, false],
        [MIC_USER, { verb: "update", resource: "leases", group: "coordination.k8s.io", namespace: NS, name: INSTALL_NAMES.leaseName }, true],
        [MIC_USER, { verb: "update", resource: "leases", group: "coordination.k8s.io", namespace: NS, name: "another-lease" }, false],
        [MIC_USER, { verb: "create", resource: "leases", group: "coordination.k8s.io", namespace: "default" }, false],
        [NMI_USER, { verb: "list", resource: "azureassignedidentities", group: aad }, true],
        [NMI_USER, { verb: "create", resource: "azureassignedidentities", group: aad, namespace: "shop" }, false],
        [NMI_USER, { verb: "patch", resource: "nodes", name: NODE }, true],
        [NMI_USER, { verb: "get", resource: "secrets", namespace: "shop" }, false],
        [NMI_USER, { verb: "get", resource: "daemonsets", group: "apps", namespace: NS, name: INSTALL_NAMES.nmi }, true],
        [NMI_USER, { verb: "get", resource: "daemonsets", group: "apps", namespace: NS, name: "other" }, false],
      ];
      const answers = await Promise.all(cases.map(([user, attrs]) => can(user, attrs)));
      expect(answers).toEqual(cases.map(([, , allowed]) => allowed));
      // And an actual request, not only the review: MIC may not read Secrets.
      await expect(server.client(MIC_USER).call("GET", `/api/v1/namespaces/${NS}/secrets`)).rejects.toMatchObject({ details: { statusCode: 403 } });
    });

    it("two MIC replicas as podidentity-mic: one leads through the Lease, assigns namespaced, the other takes over when it stops", { timeout: 120_000 }, async () => {
      const app = cloud.addServicePrincipal({ secrets: ["mic-secret"] });
      const arm = await cloud.startArm({ operationDurationMs: 200, propagationDelayMs: 0, pollRetryAfterSeconds: 1 });
      const entra = await cloud.startEntra();
      await server.writeKubeconfig(join(dir, "mic.kubeconfig"), { user: MIC_USER });
      await writeFile(join(dir, "ca.pem"), cloud.ca.certPem);
      await writeFile(
        join(dir, "azure.json"),
        JSON.stringify({ cloud: "AzurePublicCloud", tenantId: cloud.tenantId, aadClientId: app.appId, aadClientSecret: "mic-secret", subscriptionId: cloud.subscriptionId, resourceGroup: cloud.resourceGroup, vmType: "vmss" }),
      );
      const central = cloud.createUserAssignedIdentity("central");
      for (const ns of ["shop", "other"]) await server.seed({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
      await server.seed({ apiVersion: "v1", kind: "Node", metadata: { name: NODE }, spec: { providerID: `azure://${vmss.id}/virtualMachines/0` } });
      await server.seed({ apiVersion: API_GROUP_VERSION, kind: "AzureIdentity", metadata: { name: "web", namespace: "shop" }, spec: { type: 0, resourceID: web.id, clientID: web.clientId } } as KubeObject);
      await server.seed({ apiVersion: API_GROUP_VERSION, kind: "AzureIdentityBinding", metadata: { name: "web", namespace: "shop" }, spec: { azureIdentity: "web", selector: "web" } } as KubeObject);
      // Same selector in another namespace: with --force-namespaced (rendered default) it must not match shop's pods.
      await server.seed({ apiVersion: API_GROUP_VERSION, kind: "AzureIdentity", metadata: { name: "central", namespace: "other" }, spec: { type: 0, resourceID: central.id, clientID: central.clientId } } as KubeObject);
      await server.seed({ apiVersion: API_GROUP_VERSION, kind: "AzureIdentityBinding", metadata: { name: "central", namespace: "other" }, spec: { azureIdentity: "central", selector: "web" } } as KubeObject);
      const pod = (name: string, ip: string, labels: Record<string, string>) =>
        server.seed({
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name, namespace: "shop", labels },
          spec: { nodeName: NODE, containers: [{ name: "app", image: "app:1" }] },
          status: { phase: "Running", podIP: ip, podIPs: [{ ip }] },
        } as KubeObject);
      await pod("web-0", "127.0.21.1", { aadpodidbinding: "web" });

      const overrides = {
        "--cloudconfig": join(dir, "azure.json"),
        "--kubeconfig": join(dir, "mic.kubeconfig"),
        "--arm-endpoint": arm.url,
        "--authority-host": entra.url,
      };
      for (const podName of ["podidentity-mic-0", "podidentity-mic-1"]) {
        mics.push(await startMicProcess({ namespace: NS, podName, overrides, env: { NODE_EXTRA_CA_CERTS: join(dir, "ca.pem") } }));
      }
      const failed = (): string | undefined => mics.filter((m) => m.child.exitCode !== null && m.child.exitCode !== 0).map((m) => `${m.podName} exited ${m.child.exitCode}: ${m.output()}`)[0];
      const assigned = async (name: string) => {
        const f = failed();
        if (f) throw new Error(f);
        const o = (await server.getObject(AAI, "shop", name)) as { status?: { status?: string } } | undefined;
        return o?.status?.status === "Assigned" ? o : undefined;
      };
      await until(() => assigned("web-0-shop-web"), "web-0's identity Assigned", 60_000);
      expect([...vmss.userAssigned.keys()]).toEqual([web.id.toLowerCase()]);
      expect((await server.listObjects(AAI)).map((o) => (o["metadata"] as { name: string }).name)).toEqual(["web-0-shop-web"]);

      const holder = async () => ((await server.getObject("leases.coordination.k8s.io", NS, INSTALL_NAMES.leaseName)) as { spec?: { holderIdentity?: string } } | undefined)?.spec?.holderIdentity;
      const leader = await until(holder, "a Lease holder");
      expect(["podidentity-mic-0", "podidentity-mic-1"]).toContain(leader);
      await mics.find((m) => m.podName === leader)!.stop();
      const successor = await until(async () => {
        const h = await holder();
        return h !== undefined && h !== leader ? h : undefined;
      }, "the standby to take the Lease", 60_000);
      expect(successor).not.toBe(leader);
      await pod("web-1", "127.0.21.2", { aadpodidbinding: "web" });
      await until(() => assigned("web-1-shop-web"), "web-1's identity Assigned by the new leader", 60_000);
      expect(failed()).toBeUndefined();
    });
  },
);
