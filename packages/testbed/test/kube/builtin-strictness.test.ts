import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { KubeApiServer } from "../../src/kube/kube-api-server";
import { findKubectl, kubectlRunner } from "../../src/index";
import { api, startServer } from "./helpers/api";

const PODS = "/api/v1/namespaces/default/pods";
const DEPLOY = "/apis/apps/v1/namespaces/default/deployments";
const pod = (spec: Record<string, unknown>) => ({ apiVersion: "v1", kind: "Pod", metadata: { name: "web" }, spec });
const deployment = (selector: unknown, labels: Record<string, string>, extra: Record<string, unknown> = {}) => ({
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: { name: "web" },
  spec: { selector, template: { metadata: { labels }, spec: { containers: [{ name: "app", image: "app:1" }] } }, ...extra },
});

describe("built-in kinds are decoded against their schemas, as kube-apiserver's typed decoder does", () => {
  let server: KubeApiServer;
  beforeEach(async () => {
    server = await startServer();
  });
  afterEach(async () => {
    await server.close();
  });

  it("drops an unknown field of a built-in with a Warning naming it (the default, fieldValidation=Warn)", async () => {
    const r = await api(server, "POST", PODS, pod({ bogus: 1, containers: [{ name: "app", image: "app:1", extra: true }] }));
    expect(r.status).toBe(201);
    expect(r.body.spec.bogus).toBeUndefined();
    expect(r.body.spec.containers[0].extra).toBeUndefined();
    expect(r.headers.get("warning")).toBe('299 - "unknown field \\"spec.bogus\\"", 299 - "unknown field \\"spec.containers[0].extra\\""');
    expect((server.getObject("pods", "default", "web") as { spec: Record<string, unknown> }).spec["bogus"]).toBeUndefined();
  });

  it("refuses unknown fields under fieldValidation=Strict (400) and drops them silently under Ignore", async () => {
    const strict = await api(server, "POST", `${PODS}?fieldValidation=Strict`, pod({ bogus: 1, containers: [{ name: "app", image: "app:1" }] }));
    expect(strict.status).toBe(400);
    expect(strict.body).toMatchObject({ kind: "Status", reason: "BadRequest", code: 400, message: 'Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.bogus"' });
    const ignore = await api(server, "POST", `${PODS}?fieldValidation=Ignore`, pod({ bogus: 1, containers: [{ name: "app", image: "app:1" }] }));
    expect(ignore.status).toBe(201);
    expect(ignore.headers.get("warning")).toBeNull();
    expect(ignore.body.spec.bogus).toBeUndefined();
  });

  it("answers 400 'cannot be handled as a …' for wrongly typed fields, naming the Go struct field and type", async () => {
    const env = await api(server, "POST", PODS, pod({ containers: [{ name: "app", image: "app:1", env: [{ name: true }] }] }));
    expect(env.status).toBe(400);
    expect(env.body).toMatchObject({ reason: "BadRequest", code: 400, message: 'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal bool into Go struct field EnvVar.spec.containers.env.name of type string' });
    const list = await api(server, "POST", PODS, pod({ containers: "app" }));
    expect(list.body.message).toBe('Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go struct field PodSpec.spec.containers of type []v1.Container');
    const replicas = await api(server, "POST", DEPLOY, deployment({ matchLabels: { app: "web" } }, { app: "web" }, { replicas: "three" }));
    expect(replicas.status).toBe(400);
    expect(replicas.body.message).toBe('Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32');
    const lease = await api(server, "POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases", { metadata: { name: "l" }, spec: { holderIdentity: 7 } });
    expect(lease.body.message).toBe('Lease in version "v1" cannot be handled as a Lease: json: cannot unmarshal number into Go struct field LeaseSpec.spec.holderIdentity of type string');
    const node = await api(server, "POST", "/api/v1/nodes", { metadata: { name: "n" }, spec: { unschedulable: "yes" } });
    expect(node.body.message).toBe('Node in version "v1" cannot be handled as a Node: json: cannot unmarshal string into Go struct field NodeSpec.spec.unschedulable of type bool');
    expect(server.listObjects("pods", "default")).toEqual([]);
  });

  it("validates enums and required fields of the schema (422) and defaults ports[].protocol to TCP", async () => {
    const bad = await api(server, "POST", PODS, pod({ containers: [{ name: "app", image: "app:1", ports: [{ containerPort: 80, protocol: "tcp" }, { protocol: "UDP" }] }] }));
    expect(bad.status).toBe(422);
    expect(bad.body.details.causes).toEqual([
      { reason: "FieldValueNotSupported", message: 'Unsupported value: "tcp": supported values: "SCTP", "TCP", "UDP"', field: "spec.containers[0].ports[0].protocol" },
      { reason: "FieldValueRequired", message: "Required value", field: "spec.containers[0].ports[1].containerPort" },
    ]);
    const ok = await api(server, "POST", PODS, pod({ containers: [{ name: "app", image: "app:1", ports: [{ containerPort: 80 }] }] }));
    expect(ok.status).toBe(201);
    expect(ok.body.spec.containers[0].ports).toEqual([{ containerPort: 80, protocol: "TCP" }]);
    const binding = await api(server, "POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", { metadata: { name: "b" }, subjects: [{ kind: "User", name: "u" }] });
    expect(binding.status).toBe(422);
    expect(binding.body.message).toBe('ClusterRoleBinding.rbac.authorization.k8s.io "b" is invalid: roleRef: Required value');
  });

  it("requires a Deployment's selector to match its template labels (422 as kube-apiserver words it) and defaults the rest", async () => {
    const mismatch = await api(server, "POST", DEPLOY, deployment({ matchLabels: { app: "other" } }, { app: "web", tier: "x" }));
    expect(mismatch.status).toBe(422);
    expect(mismatch.body).toMatchObject({
      reason: "Invalid",
      message: 'Deployment.apps "web" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{"app":"web", "tier":"x"}: `selector` does not match template `labels`',
      details: { name: "web", group: "apps", kind: "Deployment", causes: [{ reason: "FieldValueInvalid", field: "spec.template.metadata.labels" }] },
    });
    const missing = await api(server, "POST", DEPLOY, deployment(undefined, { app: "web" }));
    expect(missing.body.message).toBe('Deployment.apps "web" is invalid: [spec.selector: Required value, spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`]');
    const ds = await api(server, "POST", "/apis/apps/v1/namespaces/default/daemonsets", { ...deployment({ matchExpressions: [{ key: "app", operator: "In", values: ["x"] }] }, { app: "web" }), kind: "DaemonSet" });
    expect(ds.status).toBe(422);
    const ok = await api(server, "POST", DEPLOY, deployment({ matchLabels: { app: "web" } }, { app: "web", tier: "x" }));
    expect(ok.status).toBe(201);
    expect(ok.body.spec).toMatchObject({ replicas: 1, revisionHistoryLimit: 10, progressDeadlineSeconds: 600, strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: "25%", maxSurge: "25%" } } });
    expect(ok.body.spec.template.spec).toMatchObject({ restartPolicy: "Always", dnsPolicy: "ClusterFirst" });
  });

  it("takes a built-in's missing apiVersion and kind from the URL", async () => {
    const r = await api(server, "POST", "/api/v1/namespaces/default/configmaps", { metadata: { name: "c" }, data: { a: "1" } });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ apiVersion: "v1", kind: "ConfigMap" });
  });
});

const kubectl = findKubectl();
const ci = process.env["CI"] === "true";

describe.skipIf(!kubectl && !ci)("kubectl sees the strictness of a real server", () => {
  let server: KubeApiServer;
  let dir: string;
  let run: ReturnType<typeof kubectlRunner>;
  beforeAll(async () => {
    if (!kubectl) throw new Error("kubectl not found: set KUBECTL, put kubectl on PATH, or run scripts/ensure-kubectl.sh");
    server = await startServer();
    dir = await mkdtemp(join(tmpdir(), "kube-strict-"));
    await server.writeKubeconfig(join(dir, "kubeconfig"));
    run = kubectlRunner(kubectl, join(dir, "kubeconfig"), join(dir, "cache"));
  });
  afterAll(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("kubectl create refuses an unknown field (its default --validate=strict) and warns with --validate=warn", async () => {
    const manifest = join(dir, "pod.yaml");
    await writeFile(manifest, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  bogus: 1\n  containers:\n  - name: app\n    image: app:1\n");
    const strict = await run("create", "-f", manifest);
    expect(strict.code).not.toBe(0);
    expect(strict.stderr).toContain('strict decoding error: unknown field "spec.bogus"');
    const warn = await run("create", "--validate=warn", "-f", manifest);
    expect(warn.code, warn.stderr).toBe(0);
    expect(warn.stderr).toContain('Warning: unknown field "spec.bogus"');
  });

  it("kubectl apply of a Deployment whose selector misses its template labels fails with the server's 422", async () => {
    const manifest = join(dir, "deploy.yaml");
    await writeFile(manifest, "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: other}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: app\n        image: app:1\n");
    const r = await run("apply", "-f", manifest);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('The Deployment "web" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`');
    expect(server.getObject("deployments.apps", "default", "web")).toBeUndefined();
  });
});
