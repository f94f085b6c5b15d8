import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeApiServer } from "../../src/kube/kube-api-server";
import { TestbedCa } from "../../src/tls/testbed-ca";
import { ManualClock } from "../../src/clock";
import { findKubectl, kubectlRunner } from "../../src/index";
import { api, startServer } from "./helpers/api";
import { AZID_URL, azureIdentity, azureIdentityCrd, CRD_URL } from "./helpers/crd";

const APPLY = { "content-type": "application/apply-patch+yaml" };
const CM_URL = "/api/v1/namespaces/default/configmaps";

type Entry = { manager: string; operation: string; apiVersion: string; fieldsType: string; fieldsV1: Record<string, unknown>; time: string };
const managed = (obj: { metadata: { managedFields?: Entry[] } }) => (obj.metadata.managedFields ?? []).map((e) => `${e.manager}/${e.operation}`);

describe("server-side apply over HTTP", () => {
  let server: KubeApiServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  const cm = (name: string, data: Record<string, string>) => ({ apiVersion: "v1", kind: "ConfigMap", metadata: { name }, data });
  const apply = (url: string, body: unknown, manager: string, extra = "") => api(server, "PATCH", `${url}?fieldManager=${manager}${extra}`, body, APPLY);

  it("creates on apply (201) and records the applier's fields as FieldsV1 with operation Apply", async () => {
    const r = await apply(`${CM_URL}/created`, cm("created", { a: "1" }), "tool");
    expect(r.status).toBe(201);
    expect(r.body.metadata.managedFields).toEqual([
      { manager: "tool", operation: "Apply", apiVersion: "v1", time: expect.any(String), fieldsType: "FieldsV1", fieldsV1: { "f:data": { "f:a": {} } } },
    ]);
    const again = await apply(`${CM_URL}/created`, cm("created", { a: "1" }), "tool");
    expect(again.status).toBe(200);
    expect(again.body.metadata.resourceVersion).toBe(r.body.metadata.resourceVersion);
  });

  it("other writes are Update entries for their manager (fieldManager, else the User-Agent's product) and take the fields they change", async () => {
    const created = await api(server, "POST", CM_URL, cm("updates", { a: "1", b: "2" }), { "user-agent": "mic/1.0 (linux)" });
    // A write that brings a map into existence owns the map itself too (`".": {}`), as 1.20 records it (the
    // conformance suite's "server-side apply: ownership and conflicts" compares these entries with the real server).
    expect(created.body.metadata.managedFields).toEqual([expect.objectContaining({ manager: "mic", operation: "Update", fieldsV1: { "f:data": { ".": {}, "f:a": {}, "f:b": {} } } })]);
    const patched = await api(server, "PATCH", `${CM_URL}/updates?fieldManager=editor`, { data: { b: "3" } }, { "content-type": "application/merge-patch+json" });
    const byManager = Object.fromEntries((patched.body.metadata.managedFields as Entry[]).map((e) => [e.manager, e.fieldsV1]));
    expect(byManager).toEqual({ mic: { "f:data": { ".": {}, "f:a": {} } }, editor: { "f:data": { "f:b": {} } } });
  });

  it("a changed value another manager owns is a 409 Conflict with one cause per field; force=true takes it", async () => {
    await api(server, "POST", `${CM_URL}?fieldManager=owner`, cm("contested", { a: "1", b: "1" }));
    const refused = await apply(`${CM_URL}/contested`, cm("contested", { a: "2", b: "1" }), "tool");
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({
      kind: "Status",
      reason: "Conflict",
      code: 409,
      message: 'Apply failed with 1 conflict: conflict with "owner" using v1: .data.a',
      details: { causes: [{ reason: "FieldManagerConflict", message: 'conflict with "owner" using v1', field: ".data.a" }] },
    });
    const forced = await apply(`${CM_URL}/contested`, cm("contested", { a: "2", b: "1" }), "tool", "&force=true");
    expect(forced.status).toBe(200);
    expect(forced.body.data).toEqual({ a: "2", b: "1" });
    const byManager = Object.fromEntries((forced.body.metadata.managedFields as Entry[]).map((e) => [`${e.manager}/${e.operation}`, e.fieldsV1]));
    // b had the same value: shared, not a conflict.
    // The creator keeps the map itself (`.`); an apply owns only the fields it sends.
    expect(byManager).toEqual({ "owner/Update": { "f:data": { ".": {}, "f:b": {} } }, "tool/Apply": { "f:data": { "f:a": {}, "f:b": {} } } });
  });

  it("a map owned as a whole with nothing inside it is `{}` (as 1.20 writes it), and reads back as the map itself", async () => {
    await api(server, "POST", `${CM_URL}?fieldManager=owner`, cm("whole", { a: "1" }));
    const forced = await apply(`${CM_URL}/whole`, cm("whole", { a: "2" }), "tool", "&force=true");
    const fields = (r: typeof forced) => Object.fromEntries((r.body.metadata.managedFields as Entry[]).map((e) => [e.manager, e.fieldsV1]));
    expect(fields(forced)).toEqual({ tool: { "f:data": { "f:a": {} } }, owner: { "f:data": {} } });
    // The owner still owns the map: its next write adds to it, and the entry shows both again.
    const added = await api(server, "PATCH", `${CM_URL}/whole?fieldManager=owner`, { data: { c: "3" } }, { "content-type": "application/merge-patch+json" });
    expect(fields(added)).toEqual({ tool: { "f:data": { "f:a": {} } }, owner: { "f:data": { ".": {}, "f:c": {} } } });
  });

  it("fields the applier no longer sends are removed unless another manager owns them", async () => {
    await apply(`${CM_URL}/shrinks`, cm("shrinks", { a: "1", b: "1", c: "1" }), "tool");
    await api(server, "PATCH", `${CM_URL}/shrinks?fieldManager=other`, { data: { c: "2" } }, { "content-type": "application/merge-patch+json" });
    const r = await apply(`${CM_URL}/shrinks`, cm("shrinks", { a: "1" }), "tool");
    expect(r.status).toBe(200);
    expect(r.body.data).toEqual({ a: "1", c: "2" });
  });

  it("lists merge by key for built-ins (containers by name): two appliers each keep their container", async () => {
    const deployment = (containers: { name: string; image: string }[]) => ({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "web" },
      spec: { selector: { matchLabels: { app: "web" } }, template: { metadata: { labels: { app: "web" } }, spec: { containers } } },
    });
    const url = "/apis/apps/v1/namespaces/default/deployments/web";
    expect((await apply(url, deployment([{ name: "app", image: "app:1" }]), "a")).status).toBe(201);
    const second = await apply(url, deployment([{ name: "sidecar", image: "side:1" }]), "b");
    expect(second.status).toBe(200);
    expect(second.body.spec.template.spec.containers.map((c: { name: string }) => c.name)).toEqual(["app", "sidecar"]);
    const entry = (second.body.metadata.managedFields as Entry[]).find((e) => e.manager === "b");
    expect(JSON.stringify(entry?.fieldsV1)).toContain('"k:{\\"name\\":\\"sidecar\\"}":{".":{}');
    const dropped = await apply(url, { ...deployment([]), spec: { ...deployment([]).spec, template: { metadata: { labels: { app: "web" } }, spec: { containers: [{ name: "sidecar", image: "side:1" }] } } } }, "a", "&force=true");
    expect(dropped.status).toBe(200);
    expect(dropped.body.spec.template.spec.containers.map((c: { name: string }) => c.name)).toEqual(["sidecar"]);
  });

  it("custom resources: create-on-apply and conflicts the same way; apply needs a fieldManager", async () => {
    expect((await api(server, "POST", CRD_URL, azureIdentityCrd())).status).toBe(201);
    const id = azureIdentity("applied", { type: 0, clientID: "c1", resourceID: "/r/1" });
    const created = await apply(`${AZID_URL}/applied`, id, "tool");
    expect(created.status).toBe(201);
    expect(managed(created.body)).toEqual(["tool/Apply"]);
    const conflict = await apply(`${AZID_URL}/applied`, azureIdentity("applied", { type: 0, clientID: "c2", resourceID: "/r/1" }), "other");
    expect(conflict.status).toBe(409);
        // An Apply manager is named without its version (Update managers have "using <apiVersion>").
    expect(conflict.body.message).toBe('Apply failed with 1 conflict: conflict with "tool": .spec.clientID');
    expect(conflict.body.details.causes).toEqual([{ reason: "FieldManagerConflict", message: 'conflict with "tool"', field: ".spec.clientID" }]);
    const anonymous = await api(server, "PATCH", `${AZID_URL}/applied`, id, { ...APPLY, "user-agent": "tool/1.0" });
    expect(anonymous.status).toBe(422);
    expect(anonymous.body).toMatchObject({ reason: "Invalid", message: 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch' });
  });
});

const kubectl = findKubectl();
const ci = process.env["CI"] === "true";

describe("no-op writes persist nothing (the real server skips them)", () => {
  let server: KubeApiServer;
  const clock = new ManualClock(Date.parse("2026-01-01T00:00:00Z"));
  beforeAll(async () => {
    server = await startServer({ clock });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("an unchanged PUT, merge patch, strategic patch or apply — by the object's managers or others, later on the clock — keeps resourceVersion and managedFields", async () => {
    const created = await api(server, "POST", `${CM_URL}?fieldManager=creator`, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "still", labels: { app: "x" } }, data: { a: "1" } });
    expect(created.status).toBe(201);
    const applied = await api(server, "PATCH", `${CM_URL}/still?fieldManager=applier`, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "still" }, data: { a: "1", b: "2" } }, APPLY);
    expect(applied.status).toBe(200);
    const before = applied.body;
    const revision = server.resourceVersion;
    const writes: [string, string, unknown, Record<string, string>][] = [
      ["PUT", `${CM_URL}/still?fieldManager=creator`, before, {}],
      ["PUT", `${CM_URL}/still?fieldManager=someone-else`, before, {}],
      ["PUT", `${CM_URL}/still`, { ...before, metadata: { ...before.metadata, managedFields: undefined } }, { "user-agent": "mic/1.0" }],
      ["PATCH", `${CM_URL}/still?fieldManager=editor`, { data: { b: "2" } }, { "content-type": "application/merge-patch+json" }],
      ["PATCH", `${CM_URL}/still?fieldManager=editor`, { metadata: { labels: { app: "x" } } }, { "content-type": "application/strategic-merge-patch+json" }],
      ["PATCH", `${CM_URL}/still?fieldManager=applier`, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "still" }, data: { a: "1", b: "2" } }, APPLY],
    ];
    for (const [method, url, body, headers] of writes) {
      // A write that persisted anything would stamp a later time on its manager's entry.
      clock.advance(60_000);
      const r = await api(server, method, url, body, headers);
      expect(r.status, `${method} ${url}: ${JSON.stringify(r.body)}`).toBe(200);
      expect(r.body.metadata.resourceVersion, `${method} ${url}`).toBe(before.metadata.resourceVersion);
      expect(r.body.metadata.managedFields, `${method} ${url}`).toEqual(before.metadata.managedFields);
    }
    expect(server.resourceVersion).toBe(revision);
    expect((server.getObject("configmaps", "default", "still") as { metadata: unknown }).metadata).toEqual(before.metadata);
  });
});

describe.skipIf(!kubectl && !ci)("kubectl apply --server-side against the emulator", () => {
  let server: KubeApiServer;
  let dir: string;
  let run: ReturnType<typeof kubectlRunner>;

  beforeAll(async () => {
    if (!kubectl) throw new Error("kubectl not found: set KUBECTL, put kubectl on PATH, or run scripts/ensure-kubectl.sh");
    server = new KubeApiServer({ tls: await TestbedCa.create(), tokens: { "ssa-token": "system:admin:ssa" } });
    await server.start();
    dir = await mkdtemp(join(tmpdir(), "kube-ssa-"));
    await server.writeKubeconfig(join(dir, "kubeconfig"), { user: "system:admin:ssa" });
    run = kubectlRunner(kubectl, join(dir, "kubeconfig"), join(dir, "cache"));
  });
  afterAll(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("creates, re-applies unchanged, reports another manager's conflict, and takes the field with --force-conflicts", async () => {
    const file = join(dir, "cm.yaml");
    await writeFile(file, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: fast\n");
    const created = await run("apply", "--server-side", "-f", file);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout.trim()).toBe("configmap/settings serverside-applied");
    const rv = (server.getObject("configmaps", "default", "settings") as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
    const again = await run("apply", "--server-side", "-f", file);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.trim()).toBe("configmap/settings serverside-applied");
    expect((server.getObject("configmaps", "default", "settings") as { metadata: { resourceVersion: string } }).metadata.resourceVersion).toBe(rv);

    const edited = await run("patch", "configmap", "settings", "--type", "merge", "-p", '{"data":{"mode":"slow"}}', "--field-manager", "operator");
    expect(edited.code, edited.stderr).toBe(0);
    const conflict = await run("apply", "--server-side", "-f", file);
    expect(conflict.code).not.toBe(0);
    expect(conflict.stderr).toContain('Apply failed with 1 conflict: conflict with "operator" using v1: .data.mode');
    expect(conflict.stderr).toContain("--force-conflicts");
    const forced = await run("apply", "--server-side", "--force-conflicts", "-f", file);
    expect(forced.code, forced.stderr).toBe(0);
    const stored = server.getObject("configmaps", "default", "settings") as { data: unknown; metadata: { managedFields: Entry[] } };
    expect(stored.data).toEqual({ mode: "fast" });
    expect(stored.metadata.managedFields.map((e) => `${e.manager}/${e.operation}`)).toEqual(["kubectl/Apply"]);
  });
});
