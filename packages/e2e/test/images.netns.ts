// NMI and MIC run from the images scripts/build-images.sh built (`make images`), with crun and no container engine:
// NMI as root with only NET_ADMIN and NET_RAW in the node's network namespace (hostNetwork), MIC as uid 65532 with
// no capabilities, both with a read-only root. A pod gets its token through the image-run NMI, whose rules are in
// the node's namespace only. The images are built before the suite (.ci/run runs `make images` before `make test`):
// building needs the Debian mirror and the npm registry, which the private namespace cannot reach. Without them —
// or with images older than packages/{nmi,mic}/dist — the scenario skips locally and fails under CI=true.
import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { TopologyPod } from "@podidentity/testbed";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { E2eCluster, type ClusterIdentity } from "../src/e2e-cluster";
import { dockerfileEnv } from "../../../scripts/dockerfile-env.mjs";
import { ImageRunner, REPO_ROOT, imageProblem } from "./helpers/image-runner";
import { curlInPod, tokenUrl } from "./helpers/pod-clients";

const ci = process.env["CI"] === "true";
const problems = (["nmi", "mic"] as const).flatMap((c) => imageProblem(c) ?? []);

/** The capability sets and user IDs of a process, from /proc/<pid>/status. */
async function processStatus(pid: number): Promise<{ uid: string; capEff: bigint; capBnd: bigint }> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const field = (name: string): string => new RegExp(`^${name}:\\s*(.*)$`, "m").exec(status)?.[1] ?? "";
  return { uid: field("Uid").split(/\s+/)[0]!, capEff: BigInt(`0x${field("CapEff")}`), capBnd: BigInt(`0x${field("CapBnd")}`) };
}

/** Container starts timed for docs/benchmarks.md (.reports/images-start-to-ready.json): NMI restarts, MIC standbys. */
const STARTS = 5;

// linux/capability.h
const CAP_NET_ADMIN = 12n;
const CAP_NET_RAW = 13n;

const IPTABLES_SAVE = ["iptables-nft-save", "iptables-legacy-save"] as const;

const median = (values: readonly number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

if (problems.length > 0 && !ci) {
  describe("NMI and MIC from their built images", () => {
    it.skip(`skipped (CI=true fails instead): ${problems.join("; ")}`, () => undefined);
  });
} else {
  describe("NMI and MIC from their built images (crun, read-only root, least privilege)", () => {
    let images: ImageRunner | undefined;
    let cluster: E2eCluster | undefined;
    let id: ClusterIdentity;
    let pod: TopologyPod;
    const nmiStartToReadyMs: number[] = [];
    const micStartToReadyMs: number[] = [];

    beforeAll(async () => {
      expect(problems.join("; "), "the images cannot be used (.ci/run builds them before `make test`; locally run `make images`)").toBe("");
      images = await ImageRunner.prepare();
      cluster = await E2eCluster.start({ runner: images.runner, readyTimeoutMs: 45_000 });
      id = await cluster.bindIdentity(cluster.createIdentity("image-id"), { selector: "image-app" });
    }, 180_000);
    afterAll(async () => {
      try {
        await cluster?.close();
      } finally {
        // every container is deleted (crun delete --force) even when the cluster's close failed
        await images?.close();
      }
    }, 60_000);

    const running = (): { images: ImageRunner; cluster: E2eCluster } => {
      if (!images || !cluster) throw new Error("the cluster did not start (see beforeAll)");
      return { images, cluster };
    };
    const container = (prefix: string): string => {
      const found = running().images.containers.findLast((c) => c.startsWith(prefix));
      if (!found) throw new Error(`no container ${prefix}* among ${running().images.containers.join(", ")}`);
      return found;
    };

    it("a pod gets its token through the NMI container, and MIC's container assigned the identity", async () => {
      const { cluster } = running();
      pod = await cluster.addPod("image-app", { labels: { aadpodidbinding: "image-app" } });
      const since = performance.now();
      const r = await curlInPod(cluster, pod, tokenUrl());
      expect(r.status, r.body).toBe(200);
      expect(r.json?.["client_id"]).toBe(id.azure.clientId);
      expect(r.headers["x-podidentity-nmi"]).toBeDefined();
      await cluster.nmiAnswered(pod, { route: "token", status: 200, since });
      await cluster.assigned.forPod(pod, id.name, "Assigned", 30_000);
    });

    it("NMI's container runs as root with exactly NET_ADMIN and NET_RAW (effective and bounding)", async () => {
      const { images, cluster } = running();
      const nmi = await processStatus(await images.pid(container(`podid-nmi-${cluster.node(0).name}`)));
      const wanted = (1n << CAP_NET_ADMIN) | (1n << CAP_NET_RAW);
      expect(nmi).toEqual({ uid: "0", capEff: wanted, capBnd: wanted });
    });

    it("MIC's container runs as uid 65532 with no capabilities", async () => {
      expect(await processStatus(await running().images.pid(container("podid-mic-0")))).toEqual({ uid: "65532", capEff: 0n, capBnd: 0n });
    });

    it("each container runs with its Dockerfile's final-stage ENV (NODE_OPTIONS' heap bounds, NODE_ENV), as the benches do", async () => {
      const { images, cluster } = running();
      for (const [pkg, prefix] of [
        ["nmi", `podid-nmi-${cluster.node(0).name}`],
        ["mic", "podid-mic-0"],
      ] as const) {
        const environ = (await readFile(`/proc/${await images.pid(container(prefix))}/environ`, "utf8")).split("\0");
        const wanted = Object.entries(dockerfileEnv(join(REPO_ROOT, "packages", pkg, "Dockerfile"))).map(([k, v]) => `${k}=${v}`);
        expect(wanted.map((kv) => kv.split("=")[0])).toEqual(expect.arrayContaining(["NODE_ENV", "NODE_OPTIONS"]));
        expect(environ, pkg).toEqual(expect.arrayContaining(wanted));
      }
    });

    it("both root filesystems are read-only; only /run and /tmp (tmpfs) are writable", async () => {
      const { images } = running();
      for (const c of [container("podid-nmi-"), container("podid-mic-0")]) {
        const app = await images.exec(c, ["/bin/sh", "-c", "touch /app/x"]);
        expect(app.code, `${c}: ${app.stderr}`).not.toBe(0);
        expect(app.stderr).toMatch(/Read-only file system/);
        const tmp = await images.exec(c, ["/bin/sh", "-c", "touch /tmp/x /run/x && echo ok"]);
        expect(tmp.stdout.trim(), `${c}: ${tmp.stderr}`).toBe("ok");
      }
    });

    it("NMI's rules are in the node's network namespace only: not in the harness's nor in the pod's", async () => {
      const { cluster } = running();
      const nmi = cluster.nmi.get(cluster.node(0).name)!;
      const chosen = await nmi.waitForLine("the entrypoint's backend choice", (l) => l.json?.["msg"] === "iptables backend chosen");
      const save = chosen.json?.["backend"] === "legacy" ? "iptables-legacy-save" : "iptables-nft-save";
      const node = await cluster.runInNode(cluster.node(0), save, ["-t", "nat"]);
      expect(node.code, node.stderr).toBe(0);
      expect(node.stdout).toContain("-A aad-metadata");
      for (const tool of IPTABLES_SAVE) {
        // this process runs in the private namespace the e2e suite made (the nodes' parent), which NMI must not touch
        const here = await promisify(execFile)(tool, ["-t", "nat"], { timeout: 10_000 });
        expect(here.stdout, `${tool} in the harness's namespace`).not.toContain("aad-metadata");
        const inPod = await cluster.runInPod(pod, tool, ["-t", "nat"]);
        expect(inPod.code, inPod.stderr).toBe(0);
        expect(inPod.stdout, `${tool} in the pod's namespace`).not.toContain("aad-metadata");
      }
    });

    it(`NMI restarts from its image ${STARTS} times, a new container each time, and serves again`, { timeout: 240_000 }, async () => {
      const { images, cluster } = running();
      const node = cluster.node(0);
      for (let round = 0; round < STARTS; round++) {
        const before = images.containers.length;
        await cluster.stopNmi(node.name);
        const t0 = performance.now();
        await cluster.startNmi(node.name); // resolves at the first /readyz 200
        nmiStartToReadyMs.push(Math.round(performance.now() - t0));
        expect(images.containers.length).toBe(before + 1);
        const r = await curlInPod(cluster, pod, tokenUrl());
        expect(r.status, r.body).toBe(200);
        expect(r.json?.["client_id"]).toBe(id.azure.clientId);
      }
    });

    it(`MIC standby replicas start from its image ${STARTS} times (ready, not leading) while the first one leads`, { timeout: 240_000 }, async () => {
      const { images, cluster } = running();
      for (let round = 0; round < STARTS; round++) {
        const t0 = performance.now();
        const standby = await cluster.startMic([], { standby: true }); // resolves at /readyz 200 with /healthz Not Active
        micStartToReadyMs.push(Math.round(performance.now() - t0));
        const c = container(`podid-mic-${cluster.mics.length - 1}`);
        expect(await processStatus(await images.pid(c))).toEqual({ uid: "65532", capEff: 0n, capBnd: 0n });
        await standby.stop();
      }
      expect(cluster.mic?.running).toBe(true);
      // for docs/benchmarks.md: launch (crun run) → first /readyz 200
      await mkdir(join(REPO_ROOT, ".reports"), { recursive: true });
      const report = { date: new Date().toISOString(), loadavg: loadavg(), nmiStartToReadyMs, micStartToReadyMs, medianMs: { nmi: median(nmiStartToReadyMs), mic: median(micStartToReadyMs) } };
      await writeFile(join(REPO_ROOT, ".reports", "images-start-to-ready.json"), JSON.stringify(report, null, 2) + "\n");
    });
  });
}
