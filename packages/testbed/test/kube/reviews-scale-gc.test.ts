import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeApiServer } from "../../src/kube/kube-api-server";
import { TestbedCa } from "../../src/tls/testbed-ca";
import { findKubectl, kubectlRunner } from "../../src/index";
import { api } from "./helpers/api";

const USER = "system:serviceaccount:kube-system:admin";
const DEPLOY = "/apis/apps/v1/namespaces/default/deployments";
const deployment = (name: string) => ({
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: { name },
  spec: { replicas: 2, selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: "app", image: "app:1" }] } } },
});

describe("reviews, /scale, event columns and garbage collection over raw HTTP", () => {
  let server: KubeApiServer;
  beforeAll(async () => {
    server = new KubeApiServer();
    await server.start();
  });
  afterAll(async () => {
    await server.close();
  });

  it("answers SelfSubjectReview with the user and its groups, and SelfSubjectAccessReview with allowed (no RBAC modelled)", async () => {
    const who = await api(server, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" });
    expect(who.status).toBe(201);
    expect(who.body.status.userInfo).toEqual({ username: "system:anonymous", groups: ["system:unauthenticated"] });
    const can = await api(server, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", { spec: { resourceAttributes: { verb: "list", resource: "pods", namespace: "default" } } });
    expect(can.status).toBe(201);
    expect(can.body).toMatchObject({ kind: "SelfSubjectAccessReview", spec: { resourceAttributes: { verb: "list", resource: "pods" } }, status: { allowed: true } });
    const neither = await api(server, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", { spec: {} });
    expect(neither.status).toBe(422);
    expect((await api(server, "GET", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")).status).toBe(405);
  });

  it("decodes the protobuf review bodies kubectl sends (application/vnd.kubernetes.protobuf); other protobuf is refused", async () => {
    // Kubernetes protobuf, built by hand from generated.proto: "k8s\0" + Unknown{typeMeta{apiVersion, kind}, raw}.
    const field = (n: number, value: Buffer | string): Buffer => {
      const bytes = Buffer.isBuffer(value) ? value : Buffer.from(value);
      return Buffer.concat([Buffer.from([(n << 3) | 2, bytes.length]), bytes]);
    };
    const envelope = (apiVersion: string, kind: string, raw: Buffer): Buffer =>
      Buffer.concat([Buffer.from("k8s\0", "latin1"), field(1, Buffer.concat([field(1, apiVersion), field(2, kind)])), field(2, raw)]);
    const post = (path: string, body: Buffer) =>
      fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/vnd.kubernetes.protobuf" }, body });
    const attributes = Buffer.concat([field(1, "shop"), field(2, "get"), field(5, "secrets"), field(7, "kv")]);
    const ssar = envelope("authorization.k8s.io/v1", "SelfSubjectAccessReview", Buffer.concat([field(1, Buffer.alloc(0)), field(2, field(1, attributes))]));
    const can = await post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", ssar);
    expect(can.status).toBe(201);
    expect(await can.json()).toMatchObject({ spec: { resourceAttributes: { namespace: "shop", verb: "get", resource: "secrets", name: "kv" } }, status: { allowed: true } });
    const who = await post("/apis/authentication.k8s.io/v1/selfsubjectreviews", envelope("authentication.k8s.io/v1", "SelfSubjectReview", field(1, Buffer.alloc(0))));
    expect(who.status).toBe(201);
    expect(((await who.json()) as { status: { userInfo: { username: string } } }).status.userInfo.username).toBe("system:anonymous");
    const truncated = await post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", ssar.subarray(0, ssar.length - 3));
    expect(truncated.status).toBe(400);
    const noMagic = await post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", ssar.subarray(4));
    expect(noMagic.status).toBe(400);
    const pod = await fetch(`${server.url}/api/v1/namespaces/default/pods`, { method: "POST", headers: { "content-type": "application/vnd.kubernetes.protobuf" }, body: envelope("v1", "Pod", Buffer.alloc(0)) });
    expect(pod.status).toBe(415);
  });

  it("serves deployments/scale: GET reads spec.replicas and the selector, PATCH and PUT change only replicas", async () => {
    await api(server, "POST", DEPLOY, deployment("s"));
    const scale = await api(server, "GET", `${DEPLOY}/s/scale`);
    expect(scale.status).toBe(200);
    expect(scale.body).toMatchObject({ kind: "Scale", apiVersion: "autoscaling/v1", spec: { replicas: 2 }, status: { replicas: 0, selector: "app=s" } });
    const patched = await api(server, "PATCH", `${DEPLOY}/s/scale`, { spec: { replicas: 5 } }, { "content-type": "application/merge-patch+json" });
    expect(patched.body.spec.replicas).toBe(5);
    expect((server.getObject("deployments.apps", "default", "s") as { spec: { replicas: number } }).spec.replicas).toBe(5);
    const stale = await api(server, "PUT", `${DEPLOY}/s/scale`, { ...scale.body, spec: { replicas: 1 } });
    expect(stale.status).toBe(409);
    const negative = await api(server, "PATCH", `${DEPLOY}/s/scale`, { spec: { replicas: -1 } }, { "content-type": "application/merge-patch+json" });
    expect(negative.status).toBe(422);
  });

  it("serves events as kubectl's table: Last Seen, Type, Reason, Object, Message", async () => {
    const at = new Date(Date.now() - 5000).toISOString().replace(/\.\d+Z$/, "Z");
    await api(server, "POST", "/api/v1/namespaces/default/events", {
      metadata: { name: "e1" },
      involvedObject: { kind: "Pod", name: "web-0", namespace: "default" },
      reason: "Scheduled",
      type: "Normal",
      message: "assigned",
      firstTimestamp: at,
      lastTimestamp: at,
    });
    const table = await api(server, "GET", "/api/v1/namespaces/default/events", undefined, { accept: "application/json;as=Table;v=v1;g=meta.k8s.io" });
    const visible = table.body.columnDefinitions.filter((c: { priority: number }) => c.priority === 0).map((c: { name: string }) => c.name);
    expect(visible).toEqual(["Last Seen", "Type", "Reason", "Object", "Message"]);
    expect(table.body.rows[0].cells.slice(1, 4)).toEqual(["Normal", "Scheduled", "pod/web-0"]);
  });

  it("garbage-collects dependents in the background, orphans with Orphan, and refuses Foreground loudly", async () => {
    const owner = await api(server, "POST", DEPLOY, deployment("owner"));
    const ref = { apiVersion: "apps/v1", kind: "Deployment", name: "owner", uid: owner.body.metadata.uid, controller: true };
    await api(server, "POST", "/api/v1/namespaces/default/configmaps", { metadata: { name: "dep", ownerReferences: [ref] } });
    const foreground = await api(server, "DELETE", `${DEPLOY}/owner`, { propagationPolicy: "Foreground" });
    expect(foreground.status).toBe(400);
    expect(foreground.body.message).toContain('propagationPolicy "Foreground" is not supported');
    expect(server.getObject("deployments.apps", "default", "owner")).toBeDefined();
    expect((await api(server, "DELETE", `${DEPLOY}/owner`)).status).toBe(200);
    expect(server.getObject("configmaps", "default", "dep")).toBeUndefined();

    const second = await api(server, "POST", DEPLOY, deployment("owner2"));
    await api(server, "POST", "/api/v1/namespaces/default/configmaps", { metadata: { name: "kept", ownerReferences: [{ ...ref, name: "owner2", uid: second.body.metadata.uid }] } });
    expect((await api(server, "DELETE", `${DEPLOY}/owner2`, { propagationPolicy: "Orphan" })).status).toBe(200);
    const kept = server.getObject("configmaps", "default", "kept") as { metadata: { ownerReferences?: unknown[] } };
    expect(kept.metadata.ownerReferences).toBeUndefined();
  });
});

const kubectl = findKubectl();
const ci = process.env["CI"] === "true";

describe.skipIf(!kubectl && !ci)("kubectl auth can-i / whoami, scale and get events against the emulator", () => {
  let server: KubeApiServer;
  let dir: string;
  let run: ReturnType<typeof kubectlRunner>;
  beforeAll(async () => {
    if (!kubectl) throw new Error("kubectl not found: set KUBECTL, put kubectl on PATH, or run scripts/ensure-kubectl.sh");
    server = new KubeApiServer({ tls: await TestbedCa.create(), tokens: { "t-admin": USER } });
    await server.start();
    dir = await mkdtemp(join(tmpdir(), "kube-auth-"));
    await server.writeKubeconfig(join(dir, "kubeconfig"), { user: USER });
    run = kubectlRunner(kubectl, join(dir, "kubeconfig"), join(dir, "cache"));
  });
  afterAll(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("kubectl auth can-i answers yes and kubectl auth whoami names the token's user", async () => {
    const can = await run("auth", "can-i", "list", "pods", "-n", "default");
    expect(can.code, can.stderr).toBe(0);
    expect(can.stdout.trim()).toBe("yes");
    expect(server.countRequests({ user: USER, verb: "create", resource: "selfsubjectaccessreviews" })).toBe(1);
    const who = await run("auth", "whoami");
    expect(who.code, who.stderr).toBe(0);
    expect(who.stdout).toMatch(/Username\s+system:serviceaccount:kube-system:admin/);
    expect(who.stdout).toMatch(/Groups\s+\[system:serviceaccounts system:serviceaccounts:kube-system system:authenticated\]/);
  });

  it("kubectl scale changes a Deployment's replicas through /scale", async () => {
    server.seed(deployment("web"));
    const r = await run("scale", "deployment/web", "--replicas=4", "-n", "default");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe("deployment.apps/web scaled");
    expect((server.getObject("deployments.apps", "default", "web") as { spec: { replicas: number } }).spec.replicas).toBe(4);
    expect(server.countRequests({ user: USER, resource: "deployments", subresource: "scale" })).toBeGreaterThan(0);
  });

  it("kubectl get events prints LAST SEEN, TYPE, REASON, OBJECT, MESSAGE", async () => {
    server.seed({ apiVersion: "v1", kind: "Event", metadata: { name: "e", namespace: "default" }, involvedObject: { kind: "Pod", name: "web-0", namespace: "default" }, reason: "Pulled", type: "Normal", message: "image pulled" });
    const r = await run("get", "events", "-n", "default");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+MESSAGE\n/);
    expect(r.stdout).toMatch(/Normal\s+Pulled\s+pod\/web-0\s+image pulled/);
  });
});
