import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeRestClient, RealKubeApiServer, realKubeUnavailableReason, TestbedCa } from "../../src/index";

// The real kube-apiserver backend (scripts/ensure-kube-apiserver.sh builds it). Locally without the binaries the
// suite is skipped with the reason; under CI=true it runs and a missing or broken build fails it.
const unavailable = realKubeUnavailableReason();
const ci = process.env["CI"] === "true";
const MIC = "system:serviceaccount:kube-system:podidentity-mic";
const STALE_DIR = join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), `podidentity-real-kube-stale-${process.pid}`);

async function statusOf(p: Promise<unknown>): Promise<{ status: number; reason?: string; message?: string }> {
  try {
    await p;
    return { status: 200 };
  } catch (err) {
    const details = (err as { details?: { statusCode?: number; body?: { reason?: string; message?: string } } }).details;
    if (details?.statusCode === undefined) throw err;
    return { status: details.statusCode, reason: details.body?.reason, message: details.body?.message };
  }
}

async function until<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("RealKubeApiServer: options", () => {
  it("refuses to start without TLS and names the option", () => {
    expect(() => new RealKubeApiServer({} as never)).toThrow(/tls option/);
  });

  it("refuses tokens that would break the token file", async () => {
    const ca = await TestbedCa.create();
    expect(() => new RealKubeApiServer({ tls: ca, tokens: { "a,b": "user" } })).toThrow(/commas/);
  });
});

describe.skipIf(unavailable !== undefined && !ci)(`RealKubeApiServer on loopback${unavailable ? ` (${unavailable})` : ""}`, () => {
  let server: RealKubeApiServer;
  let admin: KubeRestClient;
  let ca: TestbedCa;

  beforeAll(async () => {
    ca = await TestbedCa.create();
    // Left behind by a server whose process was killed before close(): its owner no longer runs.
    mkdirSync(STALE_DIR, { recursive: true });
    writeFileSync(join(STALE_DIR, "owner.pid"), String(spawnSync("true").pid));
    server = new RealKubeApiServer({ tls: ca, tokens: { "mic-token": MIC, "jane-token": "jane" } });
    await server.start();
    admin = server.client();
  }, 120_000);
  afterAll(async () => server?.close());

  it("serves HTTPS on 127.0.0.1 with the system namespaces and RBAC's bootstrap roles", async () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const version = await admin.call("GET", "/version");
    expect(version["gitVersion"]).toMatch(/^v1\.20\./);
    const names = ((await admin.call("GET", "/api/v1/namespaces"))["items"] as Array<{ metadata: { name: string } }>).map((n) => n.metadata.name);
    expect(names).toEqual(expect.arrayContaining(["default", "kube-system", "kube-public"]));
    await admin.call("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/view");
  });

  it("enforces RBAC: a service account is forbidden until a RoleBinding grants it exactly that", async () => {
    const mic = server.client(MIC);
    const denied = await statusOf(mic.call("GET", "/api/v1/namespaces/default/pods"));
    expect(denied).toMatchObject({ status: 403, reason: "Forbidden" });
    expect(denied.message).toContain(`User "${MIC}" cannot list resource "pods"`);

    await admin.call("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles", {
      apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", metadata: { name: "pod-reader" }, rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["list"] }],
    });
    await admin.call("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", {
      apiVersion: "rbac.authorization.k8s.io/v1", kind: "RoleBinding", metadata: { name: "mic-pod-reader" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "pod-reader" },
      subjects: [{ kind: "ServiceAccount", name: "podidentity-mic", namespace: "kube-system" }],
    });
    // The authorizer reads bindings through an informer: poll until it has seen this one.
    await until(async () => ((await statusOf(mic.call("GET", "/api/v1/namespaces/default/pods"))).status === 200 ? true : undefined), "the RoleBinding to take effect");
    expect(await statusOf(mic.call("GET", "/api/v1/namespaces/kube-system/pods"))).toMatchObject({ status: 403 });
    expect(await statusOf(mic.call("GET", "/api/v1/namespaces/default/pods/x"))).toMatchObject({ status: 403 });
  });

  it("signs service-account tokens through TokenRequest, and they authenticate as that account", async () => {
    await admin.call("POST", "/api/v1/namespaces/default/serviceaccounts", { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "app" } });
    const tr = await admin.call("POST", "/api/v1/namespaces/default/serviceaccounts/app/token", {
      apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 600 },
    });
    const token = (tr["status"] as { token: string }).token;
    expect(token.split(".")).toHaveLength(3);
    const kc = new KubeConfig();
    kc.loadFromString(server.kubeconfig({ token }));
    const err = await kc.makeApiClient(CoreV1Api).listNamespacedSecret({ namespace: "default" }).then(() => undefined, (e: { code?: number; body?: string }) => e);
    expect(err?.code).toBe(403);
    expect(err?.body).toContain("system:serviceaccount:default:app");
  });

  it("unknown tokens get 401; requests without a token are system:anonymous (403 on the API)", async () => {
    const kc = new KubeConfig();
    kc.loadFromString(server.kubeconfig({ token: "not-a-token" }));
    const err = await kc.makeApiClient(CoreV1Api).listNamespace().then(() => undefined, (e: { code?: number }) => e);
    expect(err?.code).toBe(401);
    const anonymous = new KubeRestClient({ url: server.url, caPem: ca.certPem });
    const denied = await statusOf(anonymous.call("GET", "/api/v1/namespaces"));
    expect(denied).toMatchObject({ status: 403, reason: "Forbidden" });
    expect(denied.message).toContain('User "system:anonymous"');
    expect(await anonymous.call("GET", "/version")).toHaveProperty("gitVersion");
  });

  it("deleted the data directory of a server whose process died without close()", () => {
    expect(existsSync(STALE_DIR)).toBe(false);
  });

  it("seeds objects with their status and reads them back as the admin", async () => {
    await server.seed({
      apiVersion: "v1", kind: "Pod", metadata: { name: "seeded", namespace: "default" },
      spec: { nodeName: "n1", containers: [{ name: "c", image: "c:1" }] }, status: { phase: "Running", podIP: "10.0.0.9" },
    });
    const pod = (await server.getObject("pods", "default", "seeded")) as { status: { phase: string; podIP: string } };
    expect(pod.status).toMatchObject({ phase: "Running", podIP: "10.0.0.9" });
    expect(await server.getObject("pods", "default", "absent")).toBeUndefined();
    expect((await server.listObjects("pods", "default")).map((p) => (p["metadata"] as { name: string }).name)).toContain("seeded");
  });

  it("close() stops kube-apiserver and etcd; nothing outlives it", async () => {
    const pids = server.pids;
    expect(pids).toHaveLength(2);
    await server.close();
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
    expect(server.pids).toEqual([]);
  });
});
