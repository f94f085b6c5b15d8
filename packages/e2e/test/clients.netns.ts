// Unmodified clients get tokens through NMI from inside pods: our SDK, @azure/identity, @azure/msal-node, curl and
// the Azure CLI. Each runs in a pod of its own with no endpoint override (169.254.169.254, DNATed by the node's
// iptables to NMI), and each test checks NMI answered that pod's own address.
import { spawnSync } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { join } from "node:path";
import type { TopologyPod } from "@podidentity/testbed";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { E2eCluster, type ClusterIdentity } from "../src/e2e-cluster";
import { claimsOf, curlInPod, runNodeClient, tokenUrl } from "./helpers/pod-clients";

const hasAz = spawnSync("/bin/sh", ["-c", "command -v az"]).status === 0;
const ci = process.env["CI"] === "true";

describe("unmodified clients in pods get the bound identity's token through NMI", () => {
  let cluster: E2eCluster;
  let id: ClusterIdentity;
  let n = 0;

  beforeAll(async () => {
    cluster = await E2eCluster.start();
    id = await cluster.bindIdentity(cluster.createIdentity("clients-id"), { selector: "clients" });
  });
  afterAll(async () => {
    await cluster?.close();
  });

  const labelledPod = (): Promise<TopologyPod> => cluster.addPod(`client-${++n}`, { labels: { aadpodidbinding: "clients" } });

  /** The token is the bound identity's, for Key Vault, and NMI answered this pod's address with 200. */
  async function expectServedByNmi(pod: TopologyPod, claims: Record<string, unknown> | undefined, since: number, audience = "https://vault.azure.net"): Promise<void> {
    expect(claims).toMatchObject({ appid: id.azure.clientId, oid: id.azure.principalId, aud: audience });
    const answered = await cluster.nmiAnswered(pod, { route: "token", status: 200, since });
    expect(answered["remote"]).toBe(pod.ip);
  }

  it("@podidentity/sdk PodIdentityCredential (default endpoint)", async () => {
    const pod = await labelledPod();
    const since = performance.now();
    const outcome = await runNodeClient(cluster, pod, "sdk-client.mjs");
    expect(outcome, outcome.message).toMatchObject({ ok: true });
    await expectServedByNmi(pod, outcome.claims, since);
  });

  it("@podidentity/sdk PodIdentityCredential with the identity's clientId", async () => {
    const pod = await labelledPod();
    const since = performance.now();
    const outcome = await runNodeClient(cluster, pod, "sdk-client.mjs", { CLIENT_ID: id.azure.clientId });
    expect(outcome, outcome.message).toMatchObject({ ok: true });
    await expectServedByNmi(pod, outcome.claims, since);
  });

  it("@azure/identity ManagedIdentityCredential (no options, and with clientId)", async () => {
    const pod = await labelledPod();
    const since = performance.now();
    const plain = await runNodeClient(cluster, pod, "identity-client.mjs");
    expect(plain, plain.message).toMatchObject({ ok: true });
    await expectServedByNmi(pod, plain.claims, since);
    const byClientId = await runNodeClient(cluster, pod, "identity-client.mjs", { CLIENT_ID: id.azure.clientId });
    expect(byClientId, byClientId.message).toMatchObject({ ok: true, claims: { appid: id.azure.clientId } });
  });

  it("@azure/msal-node ManagedIdentityApplication (system-assigned form, and userAssignedClientId)", async () => {
    const pod = await labelledPod();
    const since = performance.now();
    const plain = await runNodeClient(cluster, pod, "msal-client.mjs");
    expect(plain, plain.message).toMatchObject({ ok: true });
    await expectServedByNmi(pod, plain.claims, since);
    const byClientId = await runNodeClient(cluster, pod, "msal-client.mjs", { CLIENT_ID: id.azure.clientId });
    expect(byClientId, byClientId.message).toMatchObject({ ok: true, claims: { appid: id.azure.clientId } });
  });

  it("curl with Metadata: true; the answer carries NMI's header and IMDS's string fields", async () => {
    const pod = await labelledPod();
    const since = performance.now();
    const r = await curlInPod(cluster, pod, tokenUrl());
    expect(r.status, r.body).toBe(200);
    expect(r.headers["x-podidentity-nmi"]).toBeTruthy();
    expect(r.json).toMatchObject({ token_type: "Bearer", resource: "https://vault.azure.net", client_id: id.azure.clientId, expires_in: expect.any(String), expires_on: expect.any(String) });
    await expectServedByNmi(pod, claimsOf(String(r.json?.["access_token"])), since);
  });

  it.skipIf(!hasAz && !ci)(`az login --identity, then az account get-access-token (Debian azure-cli)${hasAz ? "" : " — skipped: az is not installed (scripts/install-system-deps.sh)"}`, async () => {
    expect(hasAz, "az (Debian azure-cli) must be installed: scripts/install-system-deps.sh").toBe(true);
    const pod = await labelledPod();
    const configDir = await mkdtemp(join(cluster.workDir, "az-"));
    const env = { AZURE_CONFIG_DIR: configDir, AZURE_CORE_COLLECT_TELEMETRY: "false", AZURE_CORE_SURVEY_MESSAGE: "false", AZURE_CORE_NO_COLOR: "true" };
    const since = performance.now();
    const login = await cluster.runInPod(pod, "az", ["login", "--identity", "--output", "json"], { env, timeoutMs: 60_000 });
    expect(login.code, login.stderr).toBe(0);
    const accounts = JSON.parse(login.stdout) as { id: string; tenantId: string; user: { type: string; name: string } }[];
    expect(accounts).toEqual([expect.objectContaining({ id: cluster.cloud.subscriptionId, tenantId: cluster.cloud.tenantId, user: expect.objectContaining({ type: "servicePrincipal" }) })]);
    // login asked for an ARM token: through NMI, from this pod
    await cluster.nmiAnswered(pod, { route: "token", status: 200, since });

    const since2 = performance.now();
    const token = await cluster.runInPod(pod, "az", ["account", "get-access-token", "--resource", "https://vault.azure.net", "--output", "json"], { env, timeoutMs: 60_000 });
    expect(token.code, token.stderr).toBe(0);
    const answer = JSON.parse(token.stdout) as { accessToken: string; tenant: string; tokenType: string };
    expect(answer.tenant).toBe(cluster.cloud.tenantId);
    await expectServedByNmi(pod, claimsOf(answer.accessToken), since2);
  });
});
