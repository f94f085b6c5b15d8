import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { KubeApiServer, TestbedCa, findKubectl, kubectlRunner, type KubectlResult } from "@podidentity/testbed";
import { afterEach, describe, expect, it } from "vitest";
import { ADMIN } from "./helpers/cluster";
import { startProtobufSecretBridge, type ProtobufSecretBridge } from "./helpers/protobuf-secret-bridge";

/**
 * docs/install.md, "Migrating from a Helm-installed v1.8": `helm uninstall` of v1.8's release deletes every object
 * in the release's stored manifest — the AzureIdentity/AzureIdentityBinding objects its `azureIdentities` value
 * created included — whatever the live objects say. The documented order keeps them: annotate them
 * `helm.sh/resource-policy=keep`, `helm upgrade --reuse-values --set azureIdentities=null` (Helm skips deleting an
 * object dropped from the chart when the live object carries the annotation, and forgets it), then uninstall.
 * Run with v1.8's real chart (fixtures/aad-pod-identity-chart-4.1.18) and a real helm 4 against the testbed.
 */

const CHART = resolve(import.meta.dirname, "fixtures/aad-pod-identity-chart-4.1.18");
// Where scripts/ensure-helm.sh puts it (keep the version in step with that script).
const HELM = process.env["HELM"] ?? join(process.env["PODIDENTITY_CACHE_DIR"] ?? "/var/cache/podidentity", "helm/2.2.2/helm");
const haveHelm = existsSync(HELM);
const kubectl = findKubectl();
const ci = process.env["CI"] === "true";
const exec = promisify(execFile);

const RELEASE = "aad-pod-identity";
const CID = "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
const RID = "/subscriptions/0000/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/kv-reader";
/** The seed guide's install, plus one identity and binding from the chart's `azureIdentities` (in the pods' namespace). */
const INSTALL = [
  "install", RELEASE, CHART, "--namespace", "kube-system",
  "--set", "operationMode=managed", "--set", "forceNamespaced=true",
  "--set", "azureIdentities.kv-reader.namespace=shop", "--set", "azureIdentities.kv-reader.type=0",
  "--set", `azureIdentities.kv-reader.resourceID=${RID}`, "--set", `azureIdentities.kv-reader.clientID=${CID}`,
  "--set", "azureIdentities.kv-reader.binding.name=kv-reader-binding", "--set", "azureIdentities.kv-reader.binding.selector=kv",
];

describe.skipIf((!haveHelm || !kubectl) && !ci)("migrating a Helm-installed v1.8 (chart 4.1.18, real helm 4): the user's identities survive `helm uninstall`", { timeout: 120_000 }, () => {
  let server: KubeApiServer | undefined;
  let bridge: ProtobufSecretBridge | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await bridge?.close();
    await server?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    [server, bridge, dir] = [undefined, undefined, undefined];
  });

  /** The testbed's API server; helm reaches it through the protobuf-Secret bridge (helpers/protobuf-secret-bridge.ts). */
  async function start(): Promise<{ helm: (...args: string[]) => Promise<{ code: number; stdout: string; stderr: string }>; ok: (...args: string[]) => Promise<string>; c: KubeApiServer }> {
    if (!haveHelm) throw new Error(`helm not found at ${HELM}: run scripts/ensure-helm.sh or set HELM`);
    if (!kubectl) throw new Error("kubectl not found: set KUBECTL, put kubectl on PATH, or run scripts/ensure-kubectl.sh");
    const ca = await TestbedCa.create();
    const c = (server = new KubeApiServer({ tls: ca, tokens: { "admin-token": ADMIN } }));
    await c.start();
    bridge = await startProtobufSecretBridge(ca, c.url);
    dir = await mkdtemp(join(tmpdir(), "podidentity-migration-helm-"));
    const direct = join(dir, "kubeconfig-kubectl");
    await c.writeKubeconfig(direct, { user: ADMIN });
    const run: (...args: string[]) => Promise<KubectlResult> = kubectlRunner(kubectl, direct, join(dir, "kubectl-cache"));
    const kubeconfig = join(dir, "kubeconfig");
    await writeFile(kubeconfig, (await readFile(direct, "utf8")).split(c.url).join(bridge.url));
    const env = { ...process.env, KUBECONFIG: kubeconfig, HELM_CACHE_HOME: join(dir, "cache"), HELM_CONFIG_HOME: join(dir, "config"), HELM_DATA_HOME: join(dir, "data") };
    const helm = async (...args: string[]) => {
      try {
        const r = await exec(HELM, args, { env, encoding: "utf8", timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
        return { code: 0, stdout: r.stdout, stderr: r.stderr };
      } catch (error) {
        const e = error as { code?: number; stdout?: string; stderr?: string };
        return { code: typeof e.code === "number" ? e.code : 1, stdout: e.stdout ?? "", stderr: e.stderr ?? String(error) };
      }
    };
    const ok = async (...args: string[]): Promise<string> => {
      const r = await run(...args);
      expect(r.code, `kubectl ${args.join(" ")}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    await ok("create", "namespace", "shop");
    const installed = await helm(...INSTALL);
    expect(installed.code, installed.stderr).toBe(0);
    expect(installed.stdout).toMatch(/STATUS: deployed/);
    return { helm, ok, c };
  }

  const userObjects = (c: KubeApiServer): unknown[] =>
    [
      ["azureidentities.aadpodidentity.k8s.io", "kv-reader"],
      ["azureidentitybindings.aadpodidentity.k8s.io", "kv-reader-binding"],
    ].map(([resource, name]) => c.getObject(resource!, "shop", name!));

  it("control: a plain `helm uninstall` deletes the AzureIdentity and AzureIdentityBinding the chart created", async () => {
    const { helm, c } = await start();
    expect(userObjects(c).every((o) => o !== undefined)).toBe(true);
    const uninstall = await helm("uninstall", RELEASE, "--namespace", "kube-system");
    expect(uninstall.code, uninstall.stderr).toBe(0);
    expect(userObjects(c)).toEqual([undefined, undefined]);
  });

  it("annotating alone is not enough: `helm uninstall` deletes annotated objects still in the release's manifest", async () => {
    const { helm, ok, c } = await start();
    await ok("annotate", "azureidentity,azureidentitybinding", "--namespace", "shop", "-l", `app.kubernetes.io/instance=${RELEASE}`, "helm.sh/resource-policy=keep");
    const uninstall = await helm("uninstall", RELEASE, "--namespace", "kube-system");
    expect(uninstall.code, uninstall.stderr).toBe(0);
    expect(userObjects(c)).toEqual([undefined, undefined]);
  });

  it("`helm upgrade --reuse-values --set azureIdentities=null` does not drop them: Helm re-renders with the old values as the chart's defaults", async () => {
    const { helm } = await start();
    const upgrade = await helm("upgrade", RELEASE, CHART, "--namespace", "kube-system", "--reuse-values", "--set", "azureIdentities=null");
    expect(upgrade.code, upgrade.stderr).toBe(0);
    // The stored user values lose the key, yet the manifest (what uninstall deletes) still holds the objects.
    expect((await helm("get", "values", RELEASE, "--namespace", "kube-system")).stdout).not.toContain("azureIdentities");
    expect((await helm("get", "manifest", RELEASE, "--namespace", "kube-system")).stdout).toContain("# Source: aad-pod-identity/templates/identities.yaml");
  });

  it("the documented order — annotate keep, upgrade --reset-then-reuse-values without azureIdentities, uninstall — keeps them, unchanged in spec", async () => {
    const { helm, ok, c } = await start();
    const before = userObjects(c) as Array<{ spec: unknown; metadata: { uid: string } }>;
    expect((await helm("get", "manifest", RELEASE, "--namespace", "kube-system")).stdout).toContain("# Source: aad-pod-identity/templates/identities.yaml");
    expect(c.getObject("daemonsets.apps", "kube-system", `${RELEASE}-nmi`)).toBeDefined();
    await ok("annotate", "azureidentity,azureidentitybinding", "--namespace", "shop", "-l", `app.kubernetes.io/instance=${RELEASE}`, "helm.sh/resource-policy=keep");
    const upgrade = await helm("upgrade", RELEASE, CHART, "--namespace", "kube-system", "--reset-then-reuse-values", "--set", "azureIdentities=null");
    expect(upgrade.code, upgrade.stderr).toBe(0);
    const manifest = await helm("get", "manifest", RELEASE, "--namespace", "kube-system");
    expect(manifest.code, manifest.stderr).toBe(0);
    expect(manifest.stdout).not.toContain("# Source: aad-pod-identity/templates/identities.yaml");
    // What the upgrade kept running: v1.8's NMI DaemonSet is still the release's (removed by the uninstall below).
    expect(manifest.stdout).toMatch(/kind: DaemonSet/);
    const uninstall = await helm("uninstall", RELEASE, "--namespace", "kube-system");
    expect(uninstall.code, uninstall.stderr).toBe(0);
    const after = userObjects(c) as Array<{ spec: unknown; metadata: { uid: string } }>;
    expect(after.map((o) => o?.metadata.uid)).toEqual(before.map((o) => o.metadata.uid));
    expect(after.map((o) => o.spec)).toEqual(before.map((o) => o.spec));
    expect(c.getObject("daemonsets.apps", "kube-system", `${RELEASE}-nmi`)).toBeUndefined();
    expect((await helm("list", "--all-namespaces", "--short")).stdout.trim()).toBe("");
    // The survivors no longer say Helm manages them: the next `helm install` of any release will not claim them.
    await ok("annotate", "azureidentity,azureidentitybinding", "--namespace", "shop", "--all", "helm.sh/resource-policy-");
  });
});
