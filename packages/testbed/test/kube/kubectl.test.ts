import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeApiServer } from "../../src/kube/kube-api-server";
import { TestbedCa } from "../../src/tls/testbed-ca";
import { eventually } from "./helpers/api";
import { azureIdentityCrd } from "./helpers/crd";
import { findKubectl, kubectlRunner } from "../../src/index";

const kubectl = findKubectl();
const ci = process.env["CI"] === "true";
const USER = "system:admin:kubectl-test";

// Under CI a missing kubectl is a failure (scripts/ensure-kubectl.sh provides one); locally the suite is skipped.
describe.skipIf(!kubectl && !ci)("kubectl against the emulator (HTTPS, bearer token)", () => {
  let server: KubeApiServer;
  let dir: string;
  let run: ReturnType<typeof kubectlRunner>;

  beforeAll(async () => {
    if (!kubectl) throw new Error("kubectl not found: set KUBECTL, put kubectl on PATH, or run scripts/ensure-kubectl.sh");
    const ca = await TestbedCa.create();
    server = new KubeApiServer({ tls: ca, tokens: { "kubectl-token": USER } });
    await server.start();
    dir = await mkdtemp(join(tmpdir(), "kube-kubectl-"));
    await server.writeKubeconfig(join(dir, "kubeconfig"), { user: USER });
    run = kubectlRunner(kubectl, join(dir, "kubeconfig"), join(dir, "cache"));
  });
  afterAll(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const file = async (name: string, text: string) => {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  };

  it("get: lists namespaces, sending its token over TLS", async () => {
    const r = await run("get", "namespaces");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^NAME\s+STATUS\s+AGE\n/);
    expect(r.stdout).toMatch(/\nkube-system\s+Active\s+\d+s\n/);
    expect(server.countRequests({ user: USER, verb: "list", resource: "namespaces" })).toBe(1);
  });

  it("get pods: prints the server-side columns, and get -w streams Table rows", async () => {
    server.seed({ apiVersion: "v1", kind: "Pod", metadata: { name: "api-0" }, spec: { nodeName: "node-1", containers: [{ name: "app", image: "app:1" }] }, status: { phase: "Running", podIP: "10.244.1.5" } });
    const wide = await run("get", "pods", "-o", "wide");
    expect(wide.code, wide.stderr).toBe(0);
    expect(wide.stdout).toMatch(/^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE\n/);
    expect(wide.stdout).toMatch(/api-0\s+0\/1\s+Running\s+0\s+\d+s\s+10\.244\.1\.5\s+node-1/);

    const watching = run("get", "pods", "--watch");
    await eventually(() => (server.activeWatches("pods") === 1 ? true : undefined), "kubectl watching");
    server.seed({ apiVersion: "v1", kind: "Pod", metadata: { name: "api-1" }, spec: { containers: [{ name: "app", image: "app:1" }] } });
    await eventually(() => (server.history("pods").length >= 3 ? true : undefined), "pod written");
    server.dropWatches();
    const out = await watching;
    expect(out.stdout.match(/^NAME\s+READY/gm)).toHaveLength(1);
    expect(out.stdout).toMatch(/api-0\s+0\/1\s+Running/);
    expect(out.stdout).toMatch(/api-1\s+0\/1\s+Pending/);
    server.deleteObject("pods", "default", "api-0");
    server.deleteObject("pods", "default", "api-1");
  });

  it("create -f: creates with server-side field validation", async () => {
    const cm = await file("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: fast\n");
    const r = await run("create", "-f", cm);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe("configmap/settings created");
    expect(server.getObject("configmaps", "default", "settings")?.["data"]).toEqual({ mode: "fast" });
    const again = await run("create", "-f", cm);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('configmaps "settings" already exists');
  });

  it("apply -f: creates, then strategic-merge-patches using the last-applied annotation", async () => {
    const manifest = (image: string, env: string) =>
      `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: app\n        image: ${image}\n        env:\n        - {name: ${env}, value: "1"}\n`;
    const first = await run("apply", "-f", await file("web.yaml", manifest("nginx:1", "OLD")));
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout.trim()).toBe("deployment.apps/web created");
    const second = await run("apply", "-f", await file("web.yaml", manifest("nginx:2", "NEW")));
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout.trim()).toBe("deployment.apps/web configured");
    const stored = server.getObject("deployments.apps", "default", "web") as { metadata: { annotations: Record<string, string>; generation: number }; spec: { template: { spec: { containers: unknown[] } } } };
    expect(stored.spec.template.spec.containers).toEqual([
      { name: "app", image: "nginx:2", env: [{ name: "NEW", value: "1" }], imagePullPolicy: "IfNotPresent", resources: {}, terminationMessagePath: "/dev/termination-log", terminationMessagePolicy: "File" },
    ]);
    expect(stored.metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]).toContain("nginx:2");
    expect(stored.metadata.generation).toBe(2);
    expect(server.countRequests({ user: USER, verb: "patch", resource: "deployments" })).toBe(1);
    const unchanged = await run("apply", "-f", await file("web.yaml", manifest("nginx:2", "NEW")));
    expect(unchanged.stdout.trim()).toBe("deployment.apps/web unchanged");
  });

  it("delete: removes the object and waits for it to be gone", async () => {
    const r = await run("delete", "configmap", "settings");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('configmap "settings" deleted');
    expect(server.getObject("configmaps", "default", "settings")).toBeUndefined();
  });

  it("get <crd-kind>: serves a CRD's resource with printer columns; pruning and strict validation apply", async () => {
    const crd = await file("crd.json", JSON.stringify(azureIdentityCrd({ printerColumns: true })));
    const created = await run("apply", "-f", crd);
    expect(created.code, created.stderr).toBe(0);
    const identity = await file(
      "id.yaml",
      "apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentity\nmetadata:\n  name: legacy\nspec:\n  type: 0\n  ResourceID: /subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id\n  ClientID: 00000000-0000-0000-0000-000000000001\n",
    );
    const applied = await run("apply", "-f", identity);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout.trim()).toBe("azureidentity.aadpodidentity.k8s.io/legacy created");
    const table = await run("get", "azureidentities");
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^NAME\s+TYPE\s+CLIENTID\s+AGE\n/);
    // An absent column value is null in the Table (as the real server sends), which kubectl prints as blank.
    expect(table.stdout, table.stdout).toMatch(/legacy\s+0\s+\d+s\n/);
    const short = await run("get", "azid", "legacy", "-o", "jsonpath={.spec.ClientID}");
    expect(short.stdout).toBe("00000000-0000-0000-0000-000000000001");
    const strict = await run("create", "-f", await file("bad.yaml", "apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentity\nmetadata:\n  name: bad\nspec:\n  type: 0\n  clientid: lowercase-typo\n"));
    const createRequest = server.requests.filter((r) => r.verb === "create" && r.resource === "azureidentities").at(-1);
    if (createRequest?.query.includes("fieldValidation=Strict")) {
      // kubectl >= 1.25 asks for server-side strict validation (found through the OpenAPI v3 PATCH parameters).
      expect(strict.code).not.toBe(0);
      expect(strict.stderr).toContain('unknown field "spec.clientid"');
    } else {
      // Older kubectl (Debian's 1.20) sends no fieldValidation: the server's default (Warn) prunes and warns.
      expect(strict.code, strict.stderr).toBe(0);
      expect(strict.stderr).toContain('Warning: unknown field "spec.clientid"');
      expect((server.getObject("azureidentities.aadpodidentity.k8s.io", "default", "bad") as { spec: unknown }).spec).toEqual({ type: 0, replicas: 1 });
    }
    const reapplied = await run("apply", "-f", await file("id.yaml", "apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentity\nmetadata:\n  name: legacy\nspec:\n  type: 1\n  ClientID: changed\n"));
    expect(reapplied.code, reapplied.stderr).toBe(0);
    const stored = server.getObject("azureidentities.aadpodidentity.k8s.io", "default", "legacy") as { spec: Record<string, unknown> };
    expect(stored.spec).toEqual({ type: 1, ClientID: "changed", replicas: 1 });
  });
});

// The dispatcher kubectl runs the minor that matches the server's /version: check the oldest and newest it bundles.
describe.skipIf(!kubectl && !ci).each(["v1.27.16", "v1.33.1"])("kubectl against a server reporting %s", (version) => {
  it("creates, applies and lists", async () => {
    if (!kubectl) throw new Error("kubectl not found: set KUBECTL, put kubectl on PATH, or run scripts/ensure-kubectl.sh");
    const ca = await TestbedCa.create();
    const server = new KubeApiServer({ tls: ca, tokens: { t: USER }, kubernetesVersion: version });
    await server.start();
    const dir = await mkdtemp(join(tmpdir(), "kube-kubectl-version-"));
    try {
      await server.writeKubeconfig(join(dir, "kubeconfig"), { user: USER });
      const run = kubectlRunner(kubectl, join(dir, "kubeconfig"), join(dir, "cache"));
      const path = join(dir, "cm.yaml");
      await writeFile(path, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: v\ndata:\n  a: '1'\n");
      expect((await run("create", "-f", path)).stdout.trim()).toBe("configmap/v created");
      await writeFile(path, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: v\ndata:\n  a: '2'\n");
      const applied = await run("apply", "-f", path);
      expect(applied.code, applied.stderr).toBe(0);
      expect(server.getObject("configmaps", "default", "v")?.["data"]).toEqual({ a: "2" });
      const listed = await run("get", "configmaps");
      expect(listed.stdout).toMatch(/^NAME\s+DATA\s+AGE\nv\s+1\s+\d+s\n/);
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
