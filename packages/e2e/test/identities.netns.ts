// Which identity a pod gets, end to end: MIC assigns it to the node's scale set, NMI serves it by the pod's source
// address. aad-pod-identity v1.8's e2e scenarios that need real networking (reference §9): an early token request
// during assignment, two identities picked by client_id, relabelling, pod identity exceptions, and the refusals —
// an unlabelled pod and a pod of another namespace.
import { randomBytes } from "node:crypto";
import { checkRbacCoverage, INSTALL_NAMES, renderManifests, rulesForServiceAccount } from "@podidentity/install";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLUSTER_USERS, PROGRAMS } from "../src/cluster-options";
import { E2eCluster } from "../src/e2e-cluster";
import { exceptionManifest } from "../src/manifests";
import { claimsOf, curlInPod, tokenUrl } from "./helpers/pod-clients";

describe("identities end to end (MIC assigns, NMI serves by source address)", () => {
  let cluster: E2eCluster;

  beforeAll(async () => {
    cluster = await E2eCluster.start();
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it("init-container style: a token request sent as the pod starts is held while MIC assigns the identity, then succeeds (one request)", async () => {
    const id = await cluster.bindIdentity(cluster.createIdentity("early-id"), { selector: "early" });
    const pod = await cluster.addPod("early-bird", { labels: { aadpodidbinding: "early" } });
    const sent = performance.now();
    const answer = curlInPod(cluster, pod, tokenUrl());
    const assigned = await cluster.assigned.forPod(pod, id.name, "Assigned", 30_000);
    const assignedAt = cluster.assigned.firstSeen(`${assigned.namespace}/${assigned.name}`, "Assigned")!;
    const created = cluster.assigned.firstSeen(`${assigned.namespace}/${assigned.name}`, "Created");
    const r = await answer;
    const done = performance.now();
    expect(r.status, r.body).toBe(200);
    expect(r.json?.["client_id"]).toBe(id.azure.clientId);
    // sent before the assignment completed, answered after it
    expect(sent).toBeLessThan(assignedAt);
    expect(done).toBeGreaterThan(assignedAt);
    // MIC writes Created first, then Assigned; the watch sees every event (the demo relies on it too)
    expect(created).toBeDefined();
    expect(created!).toBeLessThan(assignedAt);
    const logged = await cluster.nmiAnswered(pod, { route: "token", status: 200, since: sent });
    expect(Number(logged["ms"])).toBeGreaterThan(0);
    expect(cluster.nmiRequestsFrom(pod.ip!).filter((l) => l["route"] === "token")).toHaveLength(1);
  });

  it("two identities on one pod: client_id picks the identity; only the one with Key Vault access reads the secret", async () => {
    const reader = cluster.createIdentity("two-reader", { secretGet: true });
    const other = cluster.createIdentity("two-other");
    cluster.grantSecret("two-secret", "value-of-two");
    await cluster.bindIdentity(reader, { selector: "two" });
    await cluster.bindIdentity(other, { selector: "two", legacyKeys: false });
    const pod = await cluster.addPod("two-ids", { labels: { aadpodidbinding: "two" } });
    await Promise.all([cluster.assigned.forPod(pod, "two-reader", "Assigned"), cluster.assigned.forPod(pod, "two-other", "Assigned")]);

    const since = performance.now();
    for (const identity of [reader, other]) {
      const r = await curlInPod(cluster, pod, tokenUrl("https://vault.azure.net", `&client_id=${identity.clientId}`));
      expect(r.status, r.body).toBe(200);
      expect(claimsOf(String(r.json?.["access_token"]))).toMatchObject({ appid: identity.clientId, oid: identity.principalId });
    }
    const stranger = await curlInPod(cluster, pod, tokenUrl("https://vault.azure.net", "&client_id=00000000-0000-0000-0000-0000000000aa"));
    expect(stranger.status).toBe(403);
    expect(stranger.json).toMatchObject({ error: "podidentity_not_bound" });
    await cluster.nmiAnswered(pod, { route: "token", status: 403, since });

    const app = (clientId: string) =>
      cluster.runInPod(pod, process.execPath, [PROGRAMS.keyvaultSecret()], { env: { KEY_VAULT_URL: cluster.vaultUrl, SECRET_NAME: "two-secret", AZURE_CLIENT_ID: clientId } });
    const ok = await app(reader.clientId);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/secret: two-secret, version [0-9a-f]+, 12 characters/);
    const denied = await app(other.clientId);
    expect(denied.code).toBe(1);
    expect(denied.stdout + denied.stderr).toMatch(/403/);
    expect(denied.stdout + denied.stderr).toContain(other.principalId);
    expect(denied.stdout + denied.stderr).not.toContain("value-of-two");
  });

  it("relabelling a pod switches it to the other binding's identity", async () => {
    const first = await cluster.bindIdentity(cluster.createIdentity("relabel-first"), { selector: "first" });
    const second = await cluster.bindIdentity(cluster.createIdentity("relabel-second"), { selector: "second" });
    const pod = await cluster.addPod("relabelled", { labels: { aadpodidbinding: "first" } });
    const before = await curlInPod(cluster, pod, tokenUrl());
    expect(before.status, before.body).toBe(200);
    expect(before.json?.["client_id"]).toBe(first.azure.clientId);

    await cluster.relabelPod(pod, "second");
    await cluster.assigned.forPod(pod, second.name, "Assigned");
    await cluster.assigned.until("the first identity's assignment to go", (objects) => (objects.some((o) => o.pod === pod.name && o.identity === first.name) ? undefined : true));
    const since = performance.now();
    const after = await curlInPod(cluster, pod, tokenUrl());
    expect(after.status, after.body).toBe(200);
    expect(after.json?.["client_id"]).toBe(second.azure.clientId);
    const old = await curlInPod(cluster, pod, tokenUrl("https://vault.azure.net", `&client_id=${first.azure.clientId}`));
    expect(old.status).toBe(403);
    expect(old.json).toMatchObject({ error: "podidentity_not_bound" });
    await cluster.nmiAnswered(pod, { route: "token", status: 403, since });
  });

  it("deleting the pod, or the binding, removes the AzureAssignedIdentity; without a binding the pod's tokens are refused", async () => {
    const id = await cluster.bindIdentity(cluster.createIdentity("short-lived"), { selector: "short" });
    const gone = await cluster.addPod("gone-soon", { labels: { aadpodidbinding: "short" } });
    const stays = await cluster.addPod("stays", { labels: { aadpodidbinding: "short" } });
    await Promise.all([cluster.assigned.forPod(gone, id.name, "Assigned"), cluster.assigned.forPod(stays, id.name, "Assigned")]);

    await cluster.removePod(gone);
    await cluster.assigned.noneForPod(gone);
    const still = await curlInPod(cluster, stays, tokenUrl());
    expect(still.status, still.body).toBe(200);

    await cluster.admin.delete(`/apis/aadpodidentity.k8s.io/v1/namespaces/default/azureidentitybindings/${id.name}-binding`);
    await cluster.assigned.noneForPod(stays);
    const since = performance.now();
    const refused = await curlInPod(cluster, stays, tokenUrl());
    expect(refused.status).toBe(403);
    expect(refused.json).toMatchObject({ error: "podidentity_no_binding" });
    await cluster.nmiAnswered(stays, { route: "token", status: 403, since });
  });

  it("a service principal identity (type 1, its secret in a Kubernetes Secret) is served by NMI from Entra ID on login.microsoftonline.com", async () => {
    const secret = randomBytes(18).toString("base64url");
    const sp = cluster.cloud.addServicePrincipal({ displayName: "sp-app", secrets: [secret] });
    await cluster.apply(
      [
        "apiVersion: v1",
        "kind: Secret",
        "metadata:",
        "  name: sp-app-secret",
        "type: Opaque",
        "data:",
        `  clientsecret: ${Buffer.from(secret).toString("base64")}`,
        "---",
        "apiVersion: aadpodidentity.k8s.io/v1",
        "kind: AzureIdentity",
        "metadata:",
        "  name: sp-app",
        "spec:",
        "  type: 1",
        `  TenantID: ${cluster.cloud.tenantId}`,
        `  ClientID: ${sp.appId}`,
        "  ClientPassword:",
        "    Name: sp-app-secret",
        "    Namespace: default",
        "---",
        "apiVersion: aadpodidentity.k8s.io/v1",
        "kind: AzureIdentityBinding",
        "metadata:",
        "  name: sp-app-binding",
        "spec:",
        "  AzureIdentity: sp-app",
        "  Selector: sp",
        "",
      ].join("\n"),
    );
    const pod = await cluster.addPod("sp-user", { labels: { aadpodidbinding: "sp" } });
    await cluster.assigned.forPod(pod, "sp-app", "Assigned");
    const since = performance.now();
    const r = await curlInPod(cluster, pod, tokenUrl("https://vault.azure.net", `&client_id=${sp.appId}`));
    expect(r.status, r.body).toBe(200);
    expect(claimsOf(String(r.json?.["access_token"]))).toMatchObject({ appid: sp.appId, tid: cluster.cloud.tenantId, aud: "https://vault.azure.net" });
    await cluster.nmiAnswered(pod, { route: "token", status: 200, since });
    // NMI asked Entra ID (client credentials with the Secret's value), not IMDS
    expect(cluster.entra.calls.some((c) => c.clientId === sp.appId && c.status === 200)).toBe(true);
  });

  it("an unlabelled pod is refused at once with 403 podidentity_no_binding", async () => {
    const pod = await cluster.addPod("unlabelled", { labels: { app: "plain" } });
    // NMI's own count of requests it held for a pending assignment, on the pod's node (cumulative over the suite)
    const heldOnNode = (): Promise<number> => cluster.nmiCounter(pod.node!, "podidentity_nmi_pending_waits_total");
    const heldBefore = await heldOnNode();
    const since = performance.now();
    const r = await curlInPod(cluster, pod, tokenUrl());
    expect(r.status).toBe(403);
    expect(r.headers["x-podidentity-nmi"]).toBeTruthy();
    expect(r.json).toMatchObject({ error: "podidentity_no_binding" });
    await cluster.nmiAnswered(pod, { route: "token", status: 403, code: "podidentity_no_binding", since });
    // not held like a pending assignment: NMI answers from its informers
    expect(await heldOnNode()).toBe(heldBefore);
  });

  it("a pod of another namespace with the same label is refused (namespaced matching); the binding's own namespace works", async () => {
    const id = await cluster.bindIdentity(cluster.createIdentity("team-a-id"), { namespace: "team-a", selector: "team" });
    const inside = await cluster.addPod("team-a-app", { namespace: "team-a", labels: { aadpodidbinding: "team" } });
    const outside = await cluster.addPod("team-b-app", { namespace: "team-b", labels: { aadpodidbinding: "team" } });
    await cluster.assigned.forPod(inside, id.name, "Assigned");
    const ok = await curlInPod(cluster, inside, tokenUrl());
    expect(ok.status, ok.body).toBe(200);
    expect(ok.json?.["client_id"]).toBe(id.azure.clientId);

    const since = performance.now();
    const refused = await curlInPod(cluster, outside, tokenUrl());
    expect(refused.status).toBe(403);
    expect(refused.json).toMatchObject({ error: "podidentity_no_binding" });
    await cluster.nmiAnswered(outside, { route: "token", status: 403, since });
    expect(cluster.assigned.objects.filter((o) => o.podNamespace === "team-b")).toEqual([]);
  });

  it("a pod matching an AzurePodIdentityException uses the node's IMDS through NMI, with no binding", async () => {
    // An identity someone put on the scale set by hand (az vmss identity assign), as node agents use.
    const agent = cluster.createIdentity("node-agent");
    cluster.scaleSet.applyIdentityPatch({ type: "UserAssigned", userAssignedIdentities: { [agent.id]: {} } }, cluster.cloud.registry, { effectiveAtMs: 0 });
    await cluster.apply(exceptionManifest("node-agents", "default", { app: "node-agent" }));
    const pod = await cluster.addPod("agent", { labels: { app: "node-agent" } });
    const since = performance.now();
    const url = tokenUrl("https://management.azure.com/", `&client_id=${agent.clientId}`);
    // NMI's informer may not have the new exception yet: the first answers can still be the no-binding refusal.
    let r = await curlInPod(cluster, pod, url);
    const deadline = performance.now() + 10_000;
    while (r.status === 403 && performance.now() < deadline) r = await curlInPod(cluster, pod, url);
    expect(r.status, r.body).toBe(200);
    expect(claimsOf(String(r.json?.["access_token"]))).toMatchObject({ appid: agent.clientId });
    await cluster.nmiAnswered(pod, { status: 200, since });

    const plain = await cluster.addPod("not-an-agent", { labels: { app: "other" } });
    const refused = await curlInPod(cluster, plain, url);
    expect(refused.status).toBe(403);
  });

  it("the API server's request log attributes MIC's and NMI's calls to their service accounts; NMI makes no API call per token request", async () => {
    const counts = (user: string): Record<string, number> => cluster.kube.requestCounts({ user });
    const mic = counts(CLUSTER_USERS.mic);
    const nmi = counts(CLUSTER_USERS.nmi);
    expect(mic["create azureassignedidentities"]).toBeGreaterThan(0);
    expect(mic["watch pods"]).toBeGreaterThan(0);
    expect(nmi["watch pods"]).toBeGreaterThan(0);
    expect(nmi["watch azureassignedidentities"]).toBeGreaterThan(0);
    expect(Object.keys(nmi).filter((k) => /^(create|update|patch|delete) azureassignedidentities/.test(k))).toEqual([]);

    // v1.8 listed pods and identities on every token request; NMI answers from its informers.
    const id = await cluster.bindIdentity(cluster.createIdentity("quiet-id"), { selector: "quiet" });
    const pod = await cluster.addPod("quiet", { labels: { aadpodidbinding: "quiet" } });
    await cluster.assigned.forPod(pod, id.name, "Assigned");
    const first = await curlInPod(cluster, pod, tokenUrl());
    expect(first.status, first.body).toBe(200);
    const nonWatch = (): number => cluster.kube.requests.filter((r) => r.user === CLUSTER_USERS.nmi && r.verb !== "watch").length;
    const before = nonWatch();
    for (const resource of ["https://vault.azure.net", "https://storage.azure.com/", "https://management.azure.com/", "https://vault.azure.net", "https://database.windows.net/"]) {
      const r = await curlInPod(cluster, pod, tokenUrl(resource));
      expect(r.status, r.body).toBe(200);
    }
    expect(nonWatch()).toBe(before);

    // Every request MIC and NMI made here is allowed by the RBAC that podidentity-install renders (with secrets
    // granted, as the service-principal scenario needs them).
    const manifests = renderManifests({ allowAccessToSecrets: true });
    for (const [user, serviceAccount] of [[CLUSTER_USERS.mic, INSTALL_NAMES.mic], [CLUSTER_USERS.nmi, INSTALL_NAMES.nmi]] as const) {
      const made = cluster.kube.requests
        .filter((r) => r.user === user && r.verb !== undefined && r.resource !== undefined)
        .map((r) => ({ verb: r.verb!, group: r.group ?? "", resource: r.resource!, subresource: r.subresource, namespace: r.namespace, name: r.name }));
      const coverage = checkRbacCoverage(made, rulesForServiceAccount(manifests, "kube-system", serviceAccount));
      expect(coverage.denied, `${user} made ${JSON.stringify(counts(user))}`).toEqual([]);
    }
  });
});
