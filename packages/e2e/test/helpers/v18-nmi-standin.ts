/**
 * A STAND-IN for aad-pod-identity v1.8's NMI, for the migration scenario (packages/e2e/test/migration.netns.ts). v1.8's binaries
 * are Go and not packaged here, so this small Node program does on a node exactly what matters to the handover, with
 * the same iptables commands as v1.8.17's pkg/nmi/iptables/iptables.go:
 *
 * - on start and every `syncIntervalMs` (v1.8: `--ipt-update-interval-sec`, 60 s): list nat chain `aad-metadata`;
 *   unless it holds exactly v1.8's rules, flush it (or create it) and append
 *   `! -s 127.0.0.1/32 -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 127.0.0.1:2579` and
 *   `-j RETURN`; insert `-I PREROUTING 1 -j aad-metadata` when that jump is missing. No filter rules.
 * - it serves 127.0.0.1:2579 (v1.8's `--nmi-listen-address` default): a token request from the bound pod's IP is
 *   answered with a token the node's IMDS issues for the bound identity (no cache, as each call is then visible in
 *   IMDS's counters); any other caller gets 403, v1.8's answer to a pod without an assigned identity.
 * - on SIGTERM: delete the PREROUTING jump, flush and delete the nat chain, then close the listener and exit 0 —
 *   v1.8's order, so the port is freed only after the redirect is gone.
 *
 * - it holds v1.8's probe and metrics ports on every address (v1.8: `http.ListenAndServe(":8085")`, and `:9090`),
 *   which are also podidentity's defaults: `/healthz` answers 200 `Active`, anything else 404 (Go's default mux),
 *   `/metrics` a v1.8-named series. They are freed when the process exits.
 *
 * It is NOT v1.8: no informers, no AzureAssignedIdentity lookups (the bound pod and identity are arguments).
 * It prints one JSON line per event (`ready`, `request answered`, `rules deleted`).
 */
import type { TopologyNode } from "@podidentity/testbed";
import { ComponentProcess } from "../../src/component-process";
import type { E2eCluster } from "../../src/e2e-cluster";

export interface V18NmiStandinOptions {
  /** The pod v1.8 would find an Assigned AzureAssignedIdentity for. */
  boundPodIp: string;
  /** The bound identity's client ID (what v1.8's NMI asks IMDS for). */
  clientId: string;
  /** v1.8's `--ipt-update-interval-sec`, in ms; default 60 000. */
  syncIntervalMs?: number;
}

/** The stand-in's program (`node -e`), arguments: bound pod IP, client ID, sync interval in ms. */
export const V18_NMI_STANDIN_SCRIPT = String.raw`
const { execFileSync } = require("node:child_process");
const http = require("node:http");
const [boundPodIp, clientId, syncIntervalMs] = process.argv.slice(1);
const CHAIN = "aad-metadata";
const log = (msg, fields = {}) => console.log(JSON.stringify({ msg, ...fields }));
const ipt = (...args) => {
  try {
    return { code: 0, out: execFileSync("iptables", ["-w", "5", "-t", "nat", ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }) };
  } catch (e) {
    return { code: e.status ?? 1, out: String(e.stdout ?? "") };
  }
};
const must = (...args) => {
  const r = ipt(...args);
  if (r.code !== 0) throw new Error("iptables -t nat " + args.join(" ") + " failed (" + r.code + ")");
  return r.out;
};
const WANT = [
  "-N " + CHAIN,
  "-A " + CHAIN + " ! -s 127.0.0.1/32 -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 127.0.0.1:2579",
  "-A " + CHAIN + " -j RETURN",
];
function sync() {
  const listed = ipt("-S", CHAIN);
  const lines = listed.code === 0 ? listed.out.split("\n").map((l) => l.trim()).filter(Boolean) : undefined;
  if (lines === undefined || lines.join("\n") !== WANT.join("\n")) {
    if (lines === undefined) must("-N", CHAIN);
    else must("-F", CHAIN);
    must("-A", CHAIN, "!", "-s", "127.0.0.1/32", "-d", "169.254.169.254/32", "-p", "tcp", "-m", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", "127.0.0.1:2579");
    must("-A", CHAIN, "-j", "RETURN");
  }
  if (ipt("-C", "PREROUTING", "-j", CHAIN).code !== 0) must("-I", "PREROUTING", "1", "-j", CHAIN);
}
const send = (res, status, body) => {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
};
const server = http.createServer(async (req, res) => {
  const remote = String(req.socket.remoteAddress).replace(/^::ffff:/, "");
  const url = new URL(req.url, "http://127.0.0.1");
  if (remote !== boundPodIp) {
    log("request answered", { remote, status: 403 });
    return send(res, 403, { error: "forbidden", error_description: "no AzureAssignedIdentity found for pod" });
  }
  const resource = url.searchParams.get("resource") ?? "";
  try {
    const upstream = await fetch("http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=" + encodeURIComponent(resource) + "&client_id=" + encodeURIComponent(clientId), { headers: { Metadata: "true" }, signal: AbortSignal.timeout(5000) });
    const body = await upstream.text();
    log("request answered", { remote, status: upstream.status, upstream: upstream.status });
    res.writeHead(upstream.status, { "content-type": "application/json" });
    res.end(body);
  } catch (e) {
    log("request answered", { remote, status: 500, err: String(e.message) });
    send(res, 500, { error: "internal_error", error_description: "fetching a token from IMDS failed" });
  }
});
const probe = http.createServer((req, res) => {
  if (req.url === "/healthz") return res.end("Active");
  res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
  res.end("404 page not found\n");
});
const metrics = http.createServer((req, res) => {
  if (req.url !== "/metrics") return send(res, 404, {});
  res.end("# TYPE aadpodidentity_nmi_operations_duration_seconds histogram\naadpodidentity_nmi_operations_duration_seconds_count 0\n");
});
const listening = (s, ...args) => new Promise((resolve, reject) => { s.once("error", reject); s.listen(...args, resolve); });
sync();
const timer = setInterval(sync, Number(syncIntervalMs));
Promise.all([listening(server, 2579, "127.0.0.1"), listening(probe, 8085), listening(metrics, 9090)]).then(
  () => log("ready", { listen: "127.0.0.1:2579", probe: 8085, metrics: 9090 }),
  (e) => { log("listen failed", { err: String(e.message) }); process.exit(1); },
);
process.on("SIGTERM", () => {
  clearInterval(timer);
  ipt("-D", "PREROUTING", "-j", CHAIN);
  ipt("-F", CHAIN);
  ipt("-X", CHAIN);
  log("rules deleted");
  server.close();
  server.closeAllConnections();
  server.on("close", () => process.exit(0));
});
`;

/** Starts the stand-in in `node`'s network namespace; resolves once it listens with its rules in place. */
export async function startV18NmiStandin(cluster: E2eCluster, node: TopologyNode, options: V18NmiStandinOptions): Promise<ComponentProcess> {
  const args = ["-e", V18_NMI_STANDIN_SCRIPT, options.boundPodIp, options.clientId, String(options.syncIntervalMs ?? 60_000)];
  const child = cluster.topology.spawnInNode(node.name, process.execPath, args, { cleanEnv: true, env: {} });
  const standin = new ComponentProcess(`v1.8-nmi-standin@${node.name}`, child);
  await Promise.race([
    standin.waitForLine("the v1.8 NMI stand-in listening", (l) => l.json?.["msg"] === "ready", 10_000),
    standin.exited.then(({ code, signal }) => {
      throw new Error(`the v1.8 NMI stand-in on ${node.name} exited (${code ?? signal}) while starting:\n${standin.tail()}`);
    }),
  ]);
  return standin;
}
