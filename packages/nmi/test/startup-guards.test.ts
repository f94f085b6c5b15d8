import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KubenetRefusedError, checkNetworkPlugin } from "../src/interception/network-plugin-check";
import { NMI_NOT_READY_TAINT } from "../src/interception/node-taint";
import { Cluster } from "./helpers/cluster";

const logger = pino({ level: "silent" });
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "nmi-guards-"));
});
afterEach(async () => rm(dir, { recursive: true, force: true }));

describe("kubenet guard (v1.8)", () => {
  it("refuses kubenet unless allowed, and treats a missing kubelet config as 'not kubenet'", async () => {
    const path = join(dir, "kubelet");
    await writeFile(path, 'KUBELET_FLAGS=--address=0.0.0.0 --network-plugin=kubenet --max-pods=110\n');
    await expect(checkNetworkPlugin({ kubeletConfigPath: path, allowKubenet: false, logger })).rejects.toBeInstanceOf(KubenetRefusedError);
    await expect(checkNetworkPlugin({ kubeletConfigPath: path, allowKubenet: true, logger })).resolves.toBeUndefined();
    await writeFile(path, "KUBELET_FLAGS=--network-plugin=cni\n");
    await expect(checkNetworkPlugin({ kubeletConfigPath: path, allowKubenet: false, logger })).resolves.toBeUndefined();
    await expect(checkNetworkPlugin({ kubeletConfigPath: join(dir, "missing"), allowKubenet: false, logger })).resolves.toBeUndefined();
  });

  it("NMI does not start on kubenet", async () => {
    const c = await Cluster.start();
    try {
      const path = join(dir, "kubelet");
      await writeFile(path, "--network-plugin=kubenet\n");
      await expect(c.startNmi({ checkNetworkPlugin: true, kubeletConfigPath: path })).rejects.toBeInstanceOf(KubenetRefusedError);
    } finally {
      await c.close();
    }
  });
});

describe("startup taint", () => {
  it("is removed from the node once NMI is ready, other taints kept", async () => {
    const c = await Cluster.start();
    try {
      c.kube.patchObject("nodes", undefined, "node-a", { spec: { taints: [{ ...NMI_NOT_READY_TAINT }, { key: "dedicated", value: "gpu", effect: "NoSchedule" }] } });
      await c.startNmi({ removeNodeTaint: true });
      const node = c.kube.getObject("nodes", undefined, "node-a") as { spec?: { taints?: Array<{ key: string }> } };
      expect(node.spec?.taints?.map((t) => t.key)).toEqual(["dedicated"]);
    } finally {
      await c.close();
    }
  });

  it("is left alone when removal is turned off", async () => {
    const c = await Cluster.start();
    try {
      c.kube.patchObject("nodes", undefined, "node-a", { spec: { taints: [{ ...NMI_NOT_READY_TAINT }] } });
      await c.startNmi({ removeNodeTaint: false });
      const node = c.kube.getObject("nodes", undefined, "node-a") as { spec?: { taints?: Array<{ key: string }> } };
      expect(node.spec?.taints?.map((t) => t.key)).toEqual([NMI_NOT_READY_TAINT.key]);
    } finally {
      await c.close();
    }
  });
});
