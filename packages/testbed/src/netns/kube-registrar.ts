/**
 * The topology's kubelet and scheduler, as far as the Kubernetes API sees them: Node objects with their real
 * addresses, pods created Pending, bound to a node when the scheduler places them, then Running with their real
 * IPs; and a watch on nodes so taint changes made by anyone (NMI clearing the startup taint) reach the scheduler.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { KubeConnection, KubeJson, WatchEvent } from "./kube-client";
import { KubeRestClient } from "./kube-client";
import type { NodeObjectInput, PodObjectInput, Taint } from "./kube-objects";
import { nodeObject, nodeStatus, pendingPodStatus, podObject, runningPodStatus, taintsOf, terminatedPodStatus } from "./kube-objects";
import { NetnsError } from "./errors";

const MERGE = "application/merge-patch+json";

function statusOf(err: unknown): number | undefined {
  return err instanceof NetnsError ? (err.details["statusCode"] as number | undefined) : undefined;
}

function podPath(namespace: string, name?: string): string {
  return `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods${name ? `/${encodeURIComponent(name)}` : ""}`;
}

export class KubeRegistrar {
  readonly client: KubeRestClient;
  readonly #now: () => Date;
  readonly #abort = new AbortController();
  #watchLoop: Promise<void> | undefined;

  constructor(connection: KubeConnection, now: () => Date) {
    this.client = new KubeRestClient(connection);
    this.#now = now;
  }

  /** Creates (or, when it exists, updates) the Node object and its status. */
  async registerNode(n: NodeObjectInput): Promise<void> {
    const body = nodeObject(n);
    try {
      await this.client.call("POST", "/api/v1/nodes", body);
    } catch (err) {
      // 409: a node of that name exists (registered before a restart of the topology): take it over
      if (statusOf(err) !== 409) throw err;
      await this.client.call("PATCH", `/api/v1/nodes/${encodeURIComponent(n.name)}`, { metadata: body["metadata"], spec: { ...(body["spec"] as KubeJson), taints: n.taints.length ? n.taints : null } }, MERGE);
    }
    await this.client.call("PATCH", `/api/v1/nodes/${encodeURIComponent(n.name)}/status`, { status: nodeStatus(n, this.#now()) }, MERGE);
  }

  async setNodeTaints(name: string, taints: readonly Taint[]): Promise<void> {
    await this.client.call("PATCH", `/api/v1/nodes/${encodeURIComponent(name)}`, { spec: { taints: taints.length ? taints : null } }, MERGE);
  }

  /** Creates the pod unscheduled, Pending with the scheduler's Unschedulable condition. */
  async createPendingPod(p: PodObjectInput, blocking: readonly Taint[], nodeCount: number): Promise<void> {
    await this.client.call("POST", podPath(p.namespace), podObject({ ...p, nodeName: undefined }));
    await this.client.call("PATCH", `${podPath(p.namespace, p.name)}/status`, { status: pendingPodStatus(blocking, nodeCount, this.#now()) }, MERGE);
  }

  /**
   * Puts a placed pod on its node: binds the existing Pending object (the scheduler's `pods/binding` call) or creates
   * it with `spec.nodeName`, then reports it Running with its IP.
   */
  async placePod(p: PodObjectInput & { nodeName: string }, existed: boolean, podIp: string, hostIp: string): Promise<void> {
    if (!existed) {
      await this.client.call("POST", podPath(p.namespace), podObject(p));
    } else {
      try {
        await this.client.call("POST", `${podPath(p.namespace, p.name)}/binding`, {
          apiVersion: "v1",
          kind: "Binding",
          metadata: { name: p.name, namespace: p.namespace },
          target: { apiVersion: "v1", kind: "Node", name: p.nodeName },
        });
      } catch (err) {
        // 404/405: this API server does not serve pods/binding, and spec.nodeName cannot be changed by an update;
        // the only way left is to re-create the pod on its node (it gets a new uid, as a re-created pod would)
        const status = statusOf(err);
        if (status !== 404 && status !== 405) throw err;
        await this.client.call("DELETE", podPath(p.namespace, p.name));
        await this.client.call("POST", podPath(p.namespace), podObject(p));
      }
    }
    await this.client.call("PATCH", `${podPath(p.namespace, p.name)}/status`, { status: runningPodStatus(podIp, hostIp, this.#now()) }, MERGE);
  }

  /**
   * Asks the API to delete the pod, which starts its graceful termination: resolves with the grace period the API
   * gave it and its uid, or undefined when the DELETE removed it at once (never scheduled, grace period 0) or it was
   * already gone.
   */
  async beginPodDeletion(namespace: string, name: string, gracePeriodSeconds?: number): Promise<{ uid: string; gracePeriodSeconds: number } | undefined> {
    let deleted: KubeJson;
    try {
      deleted = await this.client.call("DELETE", podPath(namespace, name), gracePeriodSeconds === undefined ? undefined : { apiVersion: "v1", kind: "DeleteOptions", gracePeriodSeconds });
    } catch (err) {
      // already gone: what we wanted
      if (statusOf(err) !== 404) throw err;
      return undefined;
    }
    const meta = (deleted["metadata"] as KubeJson | undefined) ?? {};
    if (typeof meta["deletionTimestamp"] !== "string") return undefined;
    return { uid: String(meta["uid"] ?? ""), gracePeriodSeconds: typeof meta["deletionGracePeriodSeconds"] === "number" ? meta["deletionGracePeriodSeconds"] : 0 };
  }

  /**
   * The kubelet's end of a deletion, once the containers stopped: their terminated status, then the final DELETE
   * (grace period 0, for this uid only, so a new pod of the same name is never hit). A pod already gone is fine.
   */
  async finishPodDeletion(namespace: string, name: string, uid: string, exitCode: number): Promise<void> {
    try {
      await this.client.call("PATCH", `${podPath(namespace, name)}/status`, { status: terminatedPodStatus(exitCode, this.#now()) }, MERGE);
      await this.client.call("DELETE", podPath(namespace, name), { apiVersion: "v1", kind: "DeleteOptions", gracePeriodSeconds: 0, preconditions: { uid } });
    } catch (err) {
      // 404: its grace period ended on the API side first; 409: the name now belongs to a new pod
      const status = statusOf(err);
      if (status !== 404 && status !== 409) throw err;
    }
  }

  /**
   * Lists then watches nodes until `close()`, calling `onTaints` with each node's taints (on the list and on every
   * change). A watch that ends (server timeout, 410, restart) is followed by a relist, with a short backoff on errors.
   */
  watchNodes(onTaints: (name: string, taints: Taint[]) => void, onError: (err: unknown) => void): void {
    if (this.#watchLoop) return;
    const signal = this.#abort.signal;
    this.#watchLoop = (async () => {
      let delayMs = 100;
      while (!signal.aborted) {
        try {
          const list = await this.client.call("GET", "/api/v1/nodes");
          for (const item of (list["items"] as KubeJson[] | undefined) ?? []) onTaints(String((item["metadata"] as KubeJson)["name"]), taintsOf(item));
          const rv = String((list["metadata"] as KubeJson | undefined)?.["resourceVersion"] ?? "0");
          delayMs = 100;
          let expired = false;
          await this.client.watch(
            "/api/v1/nodes",
            rv,
            (e: WatchEvent) => {
              if (e.type === "ERROR") expired = true;
              else if (e.type === "ADDED" || e.type === "MODIFIED") onTaints(String((e.object["metadata"] as KubeJson)["name"]), taintsOf(e.object));
            },
            signal,
          );
          if (expired) continue;
        } catch (err) {
          if (signal.aborted) return;
          onError(err);
          await sleep(delayMs, undefined, { signal }).catch(() => undefined);
          delayMs = Math.min(delayMs * 2, 2_000);
        }
      }
    })();
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await this.#watchLoop;
  }
}
