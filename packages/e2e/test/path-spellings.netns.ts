// Issue 12 through real iptables: a pod asks 169.254.169.254 for ANOTHER identity of its node with spellings of the
// token path that a URL parser normalises (`/x/../`, `/./`, `%2e`, `//`, `;params`, letter case), sent as is
// (`curl --path-as-is`). Before the fix NMI proxied them and the node's IMDS answered with the other identity's
// token. Now no pod — unlabelled or bound to a different identity — gets it, and the node's IMDS sees nothing.
import type { TopologyPod, UserAssignedIdentity } from "@podidentity/testbed";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { E2eCluster } from "../src/e2e-cluster";
import { claimsOf, curlIn, type HttpAnswer } from "./helpers/pod-clients";

const SPELLINGS = [
  "/x/../metadata/identity/oauth2/token",
  "/metadata/./identity/oauth2/token",
  "/%2e/metadata/identity/oauth2/token",
  "/x/%2e%2e/metadata/identity/oauth2/token",
  "/x/.%2E/metadata/%2E/identity/oauth2/token",
  "/metadata/%2e/identity/oauth2/token",
  "//metadata//identity/oauth2//token",
  "/METADATA/Identity/OAuth2/Token/",
  "/metadata;x/identity/oauth2/token",
  "/metadata/identity/oauth2/x/../token/.",
];

describe("spellings of the token path through real iptables", () => {
  let cluster: E2eCluster;
  let mine: UserAssignedIdentity;
  let theirs: UserAssignedIdentity;
  let bound: TopologyPod;
  let unlabelled: TopologyPod;

  beforeAll(async () => {
    cluster = await E2eCluster.start();
    mine = cluster.createIdentity("spell-mine");
    theirs = cluster.createIdentity("spell-theirs");
    await cluster.bindIdentity(mine, { selector: "spell-mine" });
    await cluster.bindIdentity(theirs, { selector: "spell-theirs" });
    // The other identity is on the node because a pod on it uses it.
    const victim = await cluster.addPod("spell-victim", { labels: { aadpodidbinding: "spell-theirs" } });
    bound = await cluster.addPod("spell-bound", { labels: { aadpodidbinding: "spell-mine" } });
    unlabelled = await cluster.addPod("spell-unlabelled", { labels: { app: "nothing" } });
    await Promise.all([cluster.assigned.forPod(victim, "spell-theirs", "Assigned"), cluster.assigned.forPod(bound, "spell-mine", "Assigned")]);
  });
  afterAll(async () => {
    await cluster?.close();
  });

  function curlAsIs(pod: TopologyPod, path: string, query: string): Promise<HttpAnswer> {
    return curlIn((c, a) => cluster.runInPod(pod, c, ["--path-as-is", ...a], { timeoutMs: 45_000 }), `http://169.254.169.254${path}?${query}`);
  }

  it("no pod gets another identity's token, whatever the spelling, and the node's IMDS receives none of these requests", async () => {
    // The bound pod's own token first (cached by NMI), so any later IMDS call could only be the attack's.
    const own = await curlAsIs(bound, "/x/../metadata/./identity/oauth2/token", `api-version=2018-02-01&resource=${encodeURIComponent("https://vault.azure.net")}`);
    expect(own.status, own.body).toBe(200);
    expect(claimsOf(String(own.json?.["access_token"]))).toMatchObject({ appid: mine.clientId });

    const imds = cluster.imds.get(cluster.node(0).name)!;
    const before = { requests: imds.counters.requests, tokens: imds.counters.tokensIssued };
    const query = `api-version=2018-02-01&resource=${encodeURIComponent("https://vault.azure.net")}&client_id=${theirs.clientId}`;
    const seen: string[] = [];
    for (const pod of [unlabelled, bound]) {
      for (const path of SPELLINGS) {
        const r = await curlAsIs(pod, path, query);
        seen.push(`${pod.name} ${path} → ${r.status} ${String(r.json?.["error"] ?? "")}`);
        expect(r.headers["x-podidentity-nmi"], `${pod.name} ${path}: answered by NMI`).toBeTruthy();
        expect(r.status, `${pod.name} ${path}: ${r.body}`).not.toBe(200);
        expect(r.body).not.toContain(theirs.clientId);
        expect(typeof r.json?.["error"], `${pod.name} ${path}: IMDS-shaped`).toBe("string");
      }
    }
    expect(imds.counters.requests, seen.join("\n")).toBe(before.requests);
    expect(imds.counters.tokensIssued).toBe(before.tokens);
  });
});
