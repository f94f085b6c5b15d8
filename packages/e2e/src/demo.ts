// The full demo (`pnpm demo`): a pod identity cluster on this machine's real Linux networking — nodes and pods
// are network namespaces, NMI intercepts 169.254.169.254 with its real iptables rules, MIC assigns the identity
// to the node's scale set through the ARM emulator — and a pod labelled `aadpodidbinding` reads a Key Vault
// secret with the keyvault-secret example, unchanged. Prints each step with its timing, never a token or secret.
//
//   node dist/demo.js           run it and shut everything down
//   node dist/demo.js --keep    leave it running (kubeconfig, env and nsenter commands printed) until Ctrl-C
//   node dist/demo.js exec [--pod NAME] -- COMMAND…   run one's own program in a pod of the kept demo
//
// Ctrl-C or SIGTERM stops everything and exits 0 once the shutdown is complete (1 if it failed), so that make, pnpm
// and shells around it print no error for a stop that was asked for.
import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { NMI_NOT_READY_TAINT, PROGRAMS } from "./cluster-options";
import { E2eCluster } from "./e2e-cluster";
import { pollUntil } from "./http-probe";
import { enterPrivateNetns, outerInitPid } from "./enter-private-netns";
import { getTable, renderTable } from "./kubectl-table";
import { ASSIGNED_IDENTITIES_PATH } from "./assigned-identity-watch";
import { identityManifest } from "./manifests";
import { execInKeptDemo, removeKeptDemoState, writeKeptDemoState } from "./kept-demo";

const keep = process.argv.includes("--keep");
const out = (line = ""): void => void process.stdout.write(line + "\n");
const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

const DEMO = {
  identity: "keyvault-reader",
  selector: "keyvault-secret",
  pod: "keyvault-secret-7d9f8",
  deniedPod: "no-identity-5c6b",
  secretName: "db-password",
  /** Past these the demo fails instead of hanging. */
  stepDeadlineMs: 30_000,
  appDeadlineMs: 45_000,
} as const;

const runCommand = async (cmd: string, args: string[]): Promise<{ stdout: string }> => promisify(execFile)(cmd, args, { encoding: "utf8" });

let stepNumber = 0;
async function step<T>(title: string, run: () => Promise<{ value: T; details?: string[] }>): Promise<T> {
  const t0 = performance.now();
  const { value, details = [] } = await run();
  stepNumber++;
  out(`${String(stepNumber).padStart(2)}. ${`${title} `.padEnd(78, ".")} ${seconds(performance.now() - t0).padStart(7)}`);
  for (const d of details) out(`      ${d}`);
  return value;
}

function lines(child: ChildProcess): { all: string[]; done: Promise<number> } {
  const all: string[] = [];
  for (const s of [child.stdout, child.stderr]) if (s) createInterface({ input: s }).on("line", (l) => all.push(l));
  const done = new Promise<number>((resolve) => child.once("close", (code, signal) => resolve(code ?? (signal ? 128 : 1))));
  return { all, done };
}

/** Wall-clock start of the whole demo: the outer process's, passed on when it re-runs this script inside. */
const STARTED_AT_ENV = "PODIDENTITY_DEMO_STARTED_AT_MS";
const startedAtMs = Number(process.env[STARTED_AT_ENV]) || Date.now();
process.env[STARTED_AT_ENV] = String(startedAtMs);

async function inside(mode: string): Promise<number> {
  out("podidentity demo — a pod reads a Key Vault secret through NMI, on real Linux networking");
  out("(nodes and pods are network namespaces; Azure and Kubernetes are the testbed's emulators. A VMSS update takes");
  out(" 1 s here instead of 30–60 s on Azure, IMDS propagation 0.5 s instead of ~10 s.)");
  out();

  let cluster: E2eCluster | undefined;
  let stopping = false;
  const shutdown = async (): Promise<void> => {
    await cluster?.close();
    cluster = undefined;
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    out(`\n${signal}: stopping NMI (removes its iptables rules), MIC, the pods, nodes and emulators…`);
    void Promise.all([shutdown(), keep ? removeKeptDemoState() : undefined]).then(
      () => {
        out("Stopped.");
        process.exit(0);
      },
      (error: unknown) => {
        out(`✘ shutdown failed: ${(error as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", onSignal).on("SIGTERM", onSignal);

  try {
    stepNumber++;
    out(`${String(stepNumber).padStart(2)}. ${`Enter a private network namespace (${mode === "root" ? "as root" : "rootless: user + net + mount namespaces"}) `.padEnd(78, ".")} ${seconds(Date.now() - startedAtMs).padStart(7)}`);
    for (const d of [
      "this machine's interfaces, routes, iptables and /etc are out of reach; everything below lives in it",
    ]) out(`      ${d}`);

    const c = await step("Start Azure (ARM, Entra ID, Key Vault, IMDS), Kubernetes, MIC and NMI", async () => {
      const c = await E2eCluster.start({ nodeCount: 1 });
      cluster = c;
      const node = c.node(0);
      const t = Object.fromEntries(c.startTimings.map((s) => [s.step, seconds(s.ms)]));
      return {
        value: c,
        details: [
          `management.azure.com ${c.arm.url.replace("https://", "→ ")}, login.microsoftonline.com ${c.entra.url.replace("https://", "→ ")}, ${c.options.vaultName}.vault.azure.net ${c.vault.url.replace("https://", "→ ")}  (${t["azure"]})`,
          `Kubernetes API ${c.kube.url}: TLS, one token per component; podidentity CRDs applied  (${t["kube"]})`,
          `node ${node.name}: ${node.address}, pods ${node.podCidr}, created with taint ${NMI_NOT_READY_TAINT.key}:${NMI_NOT_READY_TAINT.effect}; its IMDS behind 169.254.169.254  (${t["nodes"]})`,
          `MIC: node ${PROGRAMS.mic().split("/packages/")[1]} --cloudconfig azure.json --arm-endpoint https://management.azure.com --authority-host https://login.microsoftonline.com; leads the Lease  (${t["mic"]})`,
          `NMI: node ${PROGRAMS.nmi().split("/packages/")[1]} --node ${node.name}, in the node's namespace; ready  (${t["nmi"]})`,
        ],
      };
    });
    const node = c.node(0);

    await step("NMI's interception on the node (iptables -t nat|filter -S aad-metadata)", async () => {
      // nat: pods' 169.254.169.254:80 → the node's own address; filter: only that traffic (and 127.0.0.1) reaches NMI's port.
      const chain = async (table: string, from: string): Promise<string[]> => [
        ...(await c.runInNode(node, "iptables", ["-t", table, "-S", "aad-metadata"])).stdout.trim().split("\n").filter((l) => l.startsWith("-A")),
        ...(await c.runInNode(node, "iptables", ["-t", table, "-S", from])).stdout.trim().split("\n").filter((l) => l.includes("aad-metadata")),
      ];
      // NMI is ready once its rules are live and removes the taint right after: wait for that (bounded), then show it.
      const nodeTaints = async (): Promise<{ key: string }[]> => ((await c.admin.get(`/api/v1/nodes/${node.name}`)).spec?.["taints"] as { key: string }[] | undefined) ?? [];
      // Past the deadline the step shows the taints as they are.
      await pollUntil("NMI removing the startup taint", async () => ((await nodeTaints()).some((t) => t.key === NMI_NOT_READY_TAINT.key) ? undefined : true), 5_000).catch(() => undefined);
      const taints = await nodeTaints();
      return {
        value: undefined,
        details: [
          ...(await chain("nat", "PREROUTING")).map((l) => `nat     ${l}`),
          ...(await chain("filter", "INPUT")).map((l) => `filter  ${l}`),
          `node taints now: ${taints.length === 0 ? "none (NMI removed its startup taint once the rules were live)" : JSON.stringify(taints)}`,
        ],
      };
    });

    const identity = await step(`Azure: identity '${DEMO.identity}', allowed to get secret '${DEMO.secretName}'`, async () => {
      const identity = c.createIdentity(DEMO.identity, { secretGet: true });
      c.grantSecret(DEMO.secretName, `s3cr3t-${Math.random().toString(36).slice(2)}`);
      return { value: identity, details: [`client ID ${identity.clientId}, object ID ${identity.principalId} (Key Vault access policy: secrets get)`] };
    });

    const manifest = identityManifest({ name: DEMO.identity, namespace: "default", resourceId: identity.id, clientId: identity.clientId, selector: DEMO.selector });
    await step("Apply AzureIdentity + AzureIdentityBinding as the guides write them", async () => {
      await c.bindIdentity(identity, { name: DEMO.identity, selector: DEMO.selector });
      const shown = manifest.split("\n").filter((l) => /^(kind|spec| {2}[A-Z]| {2}type)/.test(l));
      return { value: undefined, details: shown.map((l) => `│ ${l.replace(identity.id, "/subscriptions/…/" + DEMO.identity)}`) };
    });

    await step(`Start pod ${DEMO.pod} (label aadpodidbinding: ${DEMO.selector})`, async () => {
      const t0 = performance.now();
      const pod = await c.addPod(DEMO.pod, { labels: { app: "keyvault-secret", aadpodidbinding: DEMO.selector } });
      const tRunning = performance.now();
      // The container starts at once, as a kubelet would start it: its first token request reaches NMI before MIC
      // has assigned the identity, and NMI holds it until the assignment completes.
      const app = c.spawnInPod(pod, process.execPath, [PROGRAMS.keyvaultSecret()], { env: { KEY_VAULT_URL: c.vaultUrl, SECRET_NAME: DEMO.secretName } });
      const output = lines(app);
      const key = `default/${DEMO.pod}-default-${DEMO.identity}`;
      const created = c.assigned.until("AzureAssignedIdentity Created", () => c.assigned.firstSeen(key, "Created"), DEMO.stepDeadlineMs);
      const assigned = c.assigned.until("AzureAssignedIdentity Assigned", () => c.assigned.firstSeen(key, "Assigned"), DEMO.stepDeadlineMs);
      // awaited below, after the app: never an unhandled rejection meanwhile
      for (const p of [created, assigned]) p.catch(() => undefined);
      // the SDK would keep retrying for up to 90 s; the demo gives up sooner, with the app's output
      const deadline = setTimeout(() => app.kill("SIGTERM"), DEMO.appDeadlineMs);
      const code = await output.done;
      clearTimeout(deadline);
      const [tCreated, tAssigned] = await Promise.all([created, assigned]);
      const nmi = c.nmi.get(node.name)!;
      const answered = nmi.lines.find((l) => l.json?.["msg"] === "request answered" && l.json["remote"] === pod.ip && l.json["route"] === "token");
      const secretLine = output.all.find((l) => l.startsWith("secret:"));
      if (code !== 0 || !secretLine) throw new Error(`the keyvault-secret example exited ${code}:\n${output.all.join("\n")}`);
      const at = (t: number): string => `+${seconds(t - t0)}`.padEnd(9);
      const armSummary = (): string => {
        const patches = c.arm.calls.filter((a) => a.method === "PATCH" && /virtualMachineScaleSets/i.test(a.path));
        const polls = c.arm.calls.filter((a) => a.method === "GET" && /operations?\//i.test(a.path));
        return `${patches.length} PATCH of scale set ${c.scaleSet.name} (identity {} added) → ${patches.map((p) => p.status).join(", ")}, operation polled ${polls.length}×`;
      };
      const kvCalls = c.vault.calls.map((k) => `${k.method} ${k.path.split("?")[0]} → ${k.status}`);
      return {
        value: undefined,
        details: [
          `container: node keyvault-secret.js, KEY_VAULT_URL=${c.vaultUrl} SECRET_NAME=${DEMO.secretName} (no endpoint override)`,
          `${at(tRunning)} pod Running: ${pod.ip} on ${node.name}; container started`,
          `${at(tCreated)} AzureAssignedIdentity ${key} Created (MIC)`,
          `${at(tAssigned)} Assigned (MIC: ${armSummary()})`,
          answered
            ? `${at(answered.at)} token: NMI answered ${String(answered.json!["status"])} to ${pod.ip} — it held the request ${seconds(Number(answered.json!["ms"]))} while the identity was assigned`
            : "          token: (NMI's request log did not show the answer)",
          `${at(performance.now())} ${secretLine}`,
          ...output.all.filter((l) => !l.startsWith("secret:")).map((l) => `│ app: ${l}`),
          `Key Vault saw ${kvCalls.join(", ")}`,
        ],
      };
    });

    await step("kubectl get azureassignedidentities -A", async () => {
      const table = await getTable(c.admin, ASSIGNED_IDENTITIES_PATH);
      return { value: undefined, details: renderTable(table, { allNamespaces: true }) };
    });

    await step(`Unlabelled pod ${DEMO.deniedPod} asks for a token (curl 169.254.169.254)`, async () => {
      const pod = await c.addPod(DEMO.deniedPod, { labels: { app: "no-identity" } });
      const r = await c.runInPod(pod, "curl", [
        "-sS", "-H", "Metadata: true", "-w", "\n%{http_code}",
        "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net",
      ]);
      const [body = "", status = ""] = r.stdout.trim().split("\n");
      const parsed = JSON.parse(body) as { error?: string; error_description?: string };
      return { value: undefined, details: [`${pod.ip} → HTTP ${status} ${parsed.error ?? ""}: ${parsed.error_description ?? body}`] };
    });

    if (keep) {
      const pid = await outerInitPid();
      const enter = pid === undefined ? "<enter the namespace>" : `${mode === "root" ? "sudo " : ""}nsenter --target ${pid} ${mode === "root" ? "" : "--user --preserve-credentials "}--net --mount`;
      const pod = c.topology.pod(DEMO.pod);
      // both pods are Running in their own namespaces (not hostNetwork): netns and files are set
      const kept = [pod, c.topology.pod(DEMO.deniedPod)].flatMap((p) => (p.netns && p.files ? [{ name: p.name, namespace: "default", netns: p.netns, hostsFile: p.files.hostsFile, resolvFile: p.files.resolvFile }] : []));
      const statePath = pid === undefined ? undefined : await writeKeptDemoState({
        initPid: pid,
        mode: mode === "root" ? "root" : "rootless",
        pods: kept,
        env: { ...pod.files?.caEnv, KEY_VAULT_URL: c.vaultUrl, SECRET_NAME: DEMO.secretName },
      });
      out();
      out(`Running (--keep). Kubernetes: ${c.kube.url}, admin kubeconfig ${c.paths.adminKubeconfig}; logs in ${c.workDir}`);
      out("Everything lives in the private namespaces; from another terminal:");
      out(`  ${enter} kubectl --kubeconfig ${c.paths.adminKubeconfig} get azureassignedidentities -A`);
      out(`  ${enter} ip netns exec ${pod.netns} curl -s -H Metadata:true 'http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net'`);
      out(`  ${enter} cat ${c.workDir}/nmi-${node.name}.log`);
      if (statePath) {
        out(`Your own program in pod ${DEMO.pod} (bound to '${DEMO.identity}'; KEY_VAULT_URL, SECRET_NAME and the CA set; real Azure host names resolve to the emulators), from the repository root:`);
        out(`  ${mode === "root" ? "sudo env PATH=\"$PATH\" " : ""}node packages/e2e/dist/demo.js exec -- node "$PWD/packages/examples/dist/keyvault-secret.js"`);
        out(`  (--pod ${DEMO.deniedPod} for the unlabelled pod; state in ${statePath})`);
      }
      out(`env: KUBECONFIG=${c.paths.adminKubeconfig} NODE_EXTRA_CA_CERTS=${c.paths.ca} REQUESTS_CA_BUNDLE=${c.paths.ca} AZURE_TENANT_ID=${c.cloud.tenantId} AZURE_SUBSCRIPTION_ID=${c.cloud.subscriptionId}`);
      out("Ctrl-C stops it.");
      await new Promise<never>(() => undefined);
    }

    await step("Uninstall: delete NMI's DaemonSet, NMI removes its rules; everything stops", async () => {
      const nmi = c.nmi.get(node.name)!;
      const rulesBefore = await c.runInNode(node, "iptables", ["-t", "nat", "-S", "PREROUTING"]);
      await c.admin.delete(c.nmiDaemonSetPath);
      const stopped = await nmi.stop();
      const decision = nmi.logs("shutdown: removing the iptables rules")[0] ?? nmi.logs("shutdown: keeping the iptables rules (pods' metadata requests are refused until NMI is back)")[0];
      const rulesAfter = await c.runInNode(node, "iptables", ["-t", "nat", "-S"]);
      await shutdown();
      const left = (await runCommand("ip", ["netns", "list"])).stdout.split("\n").filter((l) => l.startsWith("podid-"));
      return {
        value: undefined,
        details: [
          `NMI exited ${String(stopped.code)} on SIGTERM (reason: ${String(decision?.["reason"] ?? "not logged")}); aad-metadata rules on the node: ${rulesBefore.stdout.includes("aad-metadata") ? "present" : "absent"} before, ${rulesAfter.stdout.includes("aad-metadata") ? "STILL PRESENT" : "gone"} after`,
          "(a restart or rollout keeps them: pods are refused, never answered by the node's IMDS, until NMI is back)",
          `network namespaces left: ${left.length}`,
        ],
      };
    });
    out();
    out(`Done in ${seconds(Date.now() - startedAtMs)}.`);
    return 0;
  } catch (error) {
    // a failure caused by the shutdown a signal started: the signal handler reports and exits
    if (stopping) return new Promise<never>(() => undefined);
    out(`✘ ${(error as Error).message}`);
    await shutdown();
    return 1;
  } finally {
    process.off("SIGINT", onSignal).off("SIGTERM", onSignal);
  }
}

if (process.argv[2] === "exec") process.exit(await execInKeptDemo(process.argv.slice(3), (l) => void process.stderr.write(l + "\n")));
const entered = await enterPrivateNetns(process.argv.slice(1), (l) => out(l));
if (entered.inside) process.exit(await inside(entered.mode));
else process.exit(entered.exitCode);
