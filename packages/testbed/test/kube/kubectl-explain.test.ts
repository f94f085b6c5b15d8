import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeApiServer } from "../../src/kube/kube-api-server";
import { TestbedCa } from "../../src/tls/testbed-ca";
import { findKubectl, kubectlRunner } from "../../src/index";
import { api, startServer } from "./helpers/api";
import { azureIdentityCrd } from "./helpers/crd";

const kubectl = findKubectl();
const ci = process.env["CI"] === "true";
const USER = "system:admin:kubectl-explain";
/** The product's CRDs as users apply them: their schemas carry descriptions. */
const CRDS = resolve(__dirname, "../../../../deploy/crds/crds.yaml");

// Under CI a missing kubectl is a failure (scripts/ensure-kubectl.sh provides one); locally the suite is skipped.
describe.skipIf(!kubectl && !ci)("kubectl explain against the emulator (OpenAPI v3)", () => {
  let server: KubeApiServer;
  let dir: string;
  let run: ReturnType<typeof kubectlRunner>;

  beforeAll(async () => {
    if (!kubectl) throw new Error("kubectl not found: set KUBECTL, put kubectl on PATH, or run scripts/ensure-kubectl.sh");
    const ca = await TestbedCa.create();
    server = new KubeApiServer({ tls: ca, tokens: { "explain-token": USER } });
    await server.start();
    dir = await mkdtemp(join(tmpdir(), "kube-explain-"));
    await server.writeKubeconfig(join(dir, "kubeconfig"), { user: USER });
    run = kubectlRunner(kubectl, join(dir, "kubeconfig"), join(dir, "cache"));
    const client = await run("version", "--client", "-o", "json");
    const minor = Number((JSON.parse(client.stdout) as { clientVersion: { minor: string } }).clientVersion.minor.replace(/\D+$/, ""));
    // kubectl reads explain's docs from /openapi/v3 since 1.27; older ones read /openapi/v2, kept schema-less here.
    if (minor < 27) throw new Error(`kubectl 1.${minor} reads /openapi/v2 for explain; these tests need kubectl >= 1.27`);
  });
  afterAll(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const openApiFetches = (path: string, status: number) => server.requests.filter((r) => r.path === path && r.status === status).length;

  it("explain pod.spec: PodSpec's fields, types, required marks and docs, from the core/v1 document", async () => {
    const r = await run("explain", "pod.spec");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^KIND:\s+Pod\nVERSION:\s+v1\n\nFIELD: spec <PodSpec>\n/);
    expect(r.stdout).toContain("PodSpec is a description of a pod.");
    expect(r.stdout).toMatch(/\n {2}containers\t<\[\]Container> -required-\n {4}List of containers belonging to the pod\./);
    expect(r.stdout).toMatch(/\n {2}activeDeadlineSeconds\t<integer>\n/);
    expect(r.stdout).toMatch(/\n {2}nodeSelector\t<map\[string\]string>\n/);
    expect(r.stdout).toMatch(/\n {2}dnsPolicy\t<string>\n {2}enum: ClusterFirst, ClusterFirstWithHostNet, Default, None\n/);
    // kubectl found the document through the index's hash URL.
    const fetched = server.requests.find((q) => q.path === "/openapi/v3/api/v1");
    expect(fetched?.query).toMatch(/^hash=[0-9A-F]{128}(&|$)/);
  });

  it("explain pod.spec.containers: the field's doc, then the Container type's fields with theirs", async () => {
    const r = await run("explain", "pod.spec.containers");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("FIELD: containers <[]Container>");
    expect(r.stdout).toContain("A single application container that you want to run within a pod.");
    expect(r.stdout).toMatch(/\n {2}env\t<\[\]EnvVar>\n {4}List of environment variables to set in the container\. Cannot be updated\./);
    expect(r.stdout).toMatch(/\n {2}imagePullPolicy\t<string>\n {2}enum: Always, IfNotPresent, Never\n {4}Image pull policy\./);
    expect(r.stdout).toMatch(/\n {2}name\t<string> -required-\n/);
  });

  it("explain deployment.spec.selector: apps/v1 kinds and the shared meta types (LabelSelector), docs included", async () => {
    const r = await run("explain", "deployment.spec.selector");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^GROUP:\s+apps\nKIND:\s+Deployment\nVERSION:\s+v1\n\nFIELD: selector <LabelSelector>\n/);
    expect(r.stdout).toContain("It must match the pod\n    template's labels.");
    expect(r.stdout).toMatch(/\n {2}matchLabels\t<map\[string\]string>\n/);
    const strategy = await run("explain", "deployment.spec.strategy.rollingUpdate");
    expect(strategy.stdout).toMatch(/\n {2}maxSurge\t<\w+>\n {4}The maximum number of pods that can be scheduled above the desired number of\n/);
  });

  it("explain azureidentity.spec (and --recursive): a CRD's openAPIV3Schema with its descriptions; metadata is ObjectMeta", async () => {
    const applied = await run("apply", "-f", CRDS);
    expect(applied.code, applied.stderr).toBe(0);
    const r = await run("explain", "azureidentity.spec");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^GROUP:\s+aadpodidentity\.k8s\.io\nKIND:\s+AzureIdentity\nVERSION:\s+v1\n\nFIELD: spec <Object>\n/);
    expect(r.stdout).toContain("AzureIdentitySpec describes the credential specifications of an identity on\n    Azure.");
    expect(r.stdout).toMatch(/\n {2}clientID\t<string>\n/);
    const recursive = await run("explain", "azureidentity.spec", "--recursive");
    expect(recursive.code, recursive.stderr).toBe(0);
    expect(recursive.stdout).toMatch(/\n {2}clientPassword\t<Object>\n( {4}\w+\t<string>\n)*? {4}name\t<string>\n {4}namespace\t<string>\n/);
    expect(recursive.stdout).not.toContain("Legacy spelling");
    const kind = await run("explain", "azureidentity");
    expect(kind.stdout).toMatch(/\n {2}metadata\t<ObjectMeta>\n {4}Standard object's metadata\./);
  });

  it("unknown resource or field: kubectl's own messages", async () => {
    const resource = await run("explain", "nosuchthing");
    expect(resource.code).not.toBe(0);
    expect(resource.stderr.trim()).toBe('the server doesn\'t have a resource type "nosuchthing"');
    const field = await run("explain", "pod.spec.nosuch");
    expect(field.code).not.toBe(0);
    expect(field.stderr.trim()).toBe('error: field "nosuch" does not exist');
  });

  it("a second explain revalidates the cached document (304) instead of downloading it again", async () => {
    await run("explain", "configmap.data");
    const before = openApiFetches("/openapi/v3/api/v1", 200);
    const r = await run("explain", "secret.type");
    expect(r.code, r.stderr).toBe(0);
    expect(openApiFetches("/openapi/v3/api/v1", 200)).toBe(before);
    expect(openApiFetches("/openapi/v3/api/v1", 304)).toBeGreaterThan(0);
  });

  it("apply -f merges lists with the served patch merge keys (a removed container goes, env merges by name)", async () => {
    const manifest = (containers: string) =>
      `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: merge\n  namespace: default\nspec:\n  selector:\n    matchLabels: {app: merge}\n  template:\n    metadata:\n      labels: {app: merge}\n    spec:\n      containers:\n${containers}`;
    const path = join(dir, "merge.yaml");
    await writeFile(path, manifest("      - {name: a, image: a:1, env: [{name: X, value: '1'}]}\n      - {name: b, image: b:1}\n"));
    expect((await run("apply", "-f", path)).code).toBe(0);
    await writeFile(path, manifest("      - {name: a, image: a:2, env: [{name: NEW, value: '2'}]}\n"));
    const second = await run("apply", "-f", path);
    expect(second.code, second.stderr).toBe(0);
    const stored = server.getObject("deployments.apps", "default", "merge") as { spec: { template: { spec: { containers: { name: string; image: string; env: unknown }[] } } } };
    expect(stored.spec.template.spec.containers.map((c) => [c.name, c.image, c.env])).toEqual([["a", "a:2", [{ name: "NEW", value: "2" }]]]);
  });

  it("apply -f follows the served struct strategies: a PodDisruptionBudget's selector is replaced whole, a Deployment's strategy keeps only the keys sent", async () => {
    const pdb = (labels: string) => `apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: guard\n  namespace: default\nspec:\n  minAvailable: 1\n  selector:\n    matchLabels: {${labels}}\n`;
    const pdbPath = join(dir, "pdb.yaml");
    await writeFile(pdbPath, pdb("app: guard, tier: web"));
    expect((await run("apply", "-f", pdbPath)).code).toBe(0);
    // "replace": kubectl sends the selector on every apply, so it says "configured" as against a real server.
    const again = await run("apply", "-f", pdbPath);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.trim()).toBe("poddisruptionbudget.policy/guard configured");
    await writeFile(pdbPath, pdb("app: guard"));
    expect((await run("apply", "-f", pdbPath)).code).toBe(0);
    // Replaced, not merged: a merge would keep tier (client-side apply deletes it only through a $patch or null).
    expect((server.getObject("poddisruptionbudgets.policy", "default", "guard") as { spec: { selector: unknown } }).spec.selector).toEqual({ matchLabels: { app: "guard" } });
    const patched = await run("patch", "pdb", "guard", "-p", '{"spec":{"selector":{"matchLabels":{"other":"x"}}}}');
    expect(patched.code, patched.stderr).toBe(0);
    expect((server.getObject("poddisruptionbudgets.policy", "default", "guard") as { spec: { selector: unknown } }).spec.selector).toEqual({ matchLabels: { other: "x" } });

    const deployment = (strategy: string) =>
      `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: rollout\n  namespace: default\nspec:\n  selector:\n    matchLabels: {app: rollout}\n  strategy: ${strategy}\n  template:\n    metadata:\n      labels: {app: rollout}\n    spec:\n      containers: [{name: a, image: a:1}]\n`;
    const path = join(dir, "rollout.yaml");
    await writeFile(path, deployment("{type: RollingUpdate, rollingUpdate: {maxSurge: 2}}"));
    expect((await run("apply", "-f", path)).code).toBe(0);
    await writeFile(path, deployment("{type: Recreate}"));
    const changed = await run("apply", "-f", path);
    expect(changed.code, changed.stderr).toBe(0);
    // "retainKeys": kubectl sends `$retainKeys: [type]`, so rollingUpdate goes (a Recreate with it is invalid).
    expect((server.getObject("deployments.apps", "default", "rollout") as { spec: { strategy: unknown } }).spec.strategy).toEqual({ type: "Recreate" });
  });
});

describe("/openapi/v3 documents over HTTP", () => {
  let server: KubeApiServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("the index names each group-version by content hash; the document answers with that ETag, immutable", async () => {
    const index = await api(server, "GET", "/openapi/v3");
    const url = index.body.paths["api/v1"].serverRelativeURL as string;
    const hash = /\?hash=([0-9A-F]{128})$/.exec(url)?.[1];
    expect(hash).toBeDefined();
    const doc = await api(server, "GET", url);
    expect(doc.status).toBe(200);
    expect(doc.headers.get("etag")).toBe(`"${hash}"`);
    expect(doc.headers.get("cache-control")).toBe("public, immutable");
    const pod = doc.body.components.schemas["io.k8s.api.core.v1.Pod"];
    expect(pod["x-kubernetes-group-version-kind"]).toEqual([{ group: "", version: "v1", kind: "Pod" }]);
    expect(pod.properties.spec).toMatchObject({ allOf: [{ $ref: "#/components/schemas/io.k8s.api.core.v1.PodSpec" }] });
    const containers = doc.body.components.schemas["io.k8s.api.core.v1.PodSpec"].properties.containers;
    expect(containers).toMatchObject({ type: "array", "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge" });
    expect(doc.body.components.schemas["io.k8s.api.core.v1.Container"].properties.ports["x-kubernetes-patch-merge-key"]).toBe("containerPort");
    expect(doc.body.components.schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"].description).toContain("ObjectMeta is metadata");
  });

  it("If-None-Match with the ETag answers 304; a stale hash redirects (301) to the current URL; no hash must revalidate", async () => {
    const index = await api(server, "GET", "/openapi/v3");
    const url = index.body.paths["apis/apps/v1"].serverRelativeURL as string;
    const hash = url.split("hash=")[1] as string;
    const notModified = await fetch(`${server.url}${url}`, { headers: { "If-None-Match": `"${hash}"` } });
    expect(notModified.status).toBe(304);
    expect(await notModified.text()).toBe("");
    const stale = await fetch(`${server.url}/openapi/v3/apis/apps/v1?hash=0123`, { redirect: "manual" });
    expect(stale.status).toBe(301);
    expect(stale.headers.get("location")).toBe(url);
    const plain = await api(server, "GET", "/openapi/v3/apis/apps/v1");
    expect(plain.headers.get("cache-control")).toBe("no-cache, private");
    expect(plain.body.components.schemas["io.k8s.api.apps.v1.Deployment"]).toBeDefined();
  });

  it("a CRD change makes a new document and hash for its group-version only; unknown group-versions are 404", async () => {
    const before = (await api(server, "GET", "/openapi/v3")).body.paths;
    const crd = await api(server, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", azureIdentityCrd());
    expect(crd.status).toBe(201);
    const after = (await api(server, "GET", "/openapi/v3")).body.paths;
    expect(after["api/v1"]).toEqual(before["api/v1"]);
    const doc = await api(server, "GET", after["apis/aadpodidentity.k8s.io/v1"].serverRelativeURL);
    const azid = doc.body.components.schemas["io.k8s.aadpodidentity.v1.AzureIdentity"];
    expect(azid.properties.metadata.allOf).toEqual([{ $ref: "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" }]);
    expect(doc.body.components.schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]).toBeDefined();
    const missing = await api(server, "GET", "/openapi/v3/apis/nosuch.example.com/v1");
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ kind: "Status", reason: "NotFound" });
  });
});
