import {
  API_GROUP_VERSION,
  ASSIGNED_IDENTITY_FINALIZER,
  NODENAME_LABEL,
  assignedIdentityName,
  customResourceDefinitions,
} from "@podidentity/api";
import { AzureCloud, KubeApiServer, renderKubeconfig, type ComputeResource, type ImdsServer, type UserAssignedIdentity } from "@podidentity/testbed";
import { connect } from "node:net";
import pino from "pino";
import { Agent, request } from "undici";
import { KubeClient, Nmi, type NmiOptions } from "../../src/index";

export const NODE = "node-a";
export const KV = "https://vault.azure.net";

/** The testbed for one NMI: Kubernetes API server with the CRDs, an Azure cloud with this node's VM and IMDS. */
export class Cluster {
  readonly kube: KubeApiServer;
  readonly cloud: AzureCloud;
  readonly vm: ComputeResource;
  readonly imds: ImdsServer;
  readonly kubeClient: KubeClient;
  nmi: Nmi | undefined;
  readonly #agents: Agent[] = [];

  private constructor(kube: KubeApiServer, cloud: AzureCloud, vm: ComputeResource, imds: ImdsServer) {
    this.kube = kube;
    this.cloud = cloud;
    this.vm = vm;
    this.imds = imds;
    this.kubeClient = KubeClient.fromKubeconfig(renderKubeconfig({ server: kube.url, caPem: cloud.ca.certPem }));
  }

  static async start(options: { imds?: { requestsPerSecond?: number; maxConcurrent?: number }; tokenLifetimeMs?: number } = {}): Promise<Cluster> {
    const cloud = await AzureCloud.create({ ...(options.tokenLifetimeMs !== undefined && { tokenLifetimeMs: options.tokenLifetimeMs }) });
    // HTTPS with the testbed CA: @kubernetes/client-node 2 refuses plain http unless TLS checks are disabled.
    const kube = new KubeApiServer({ tls: cloud.ca });
    await kube.start();
    for (const crd of customResourceDefinitions()) kube.seed(crd as never);
    const vm = cloud.addVirtualMachine(NODE);
    const imds = await cloud.startImds(NODE, vm, options.imds ?? {});
    kube.seed({ apiVersion: "v1", kind: "Node", metadata: { name: NODE }, spec: {} });
    for (const ns of ["shop", "other", "ns1", "ns2", "kube-system"]) {
      if (kube.getObject("namespaces", undefined, ns) === undefined) kube.seed({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
    }
    return new Cluster(kube, cloud, vm, imds);
  }

  async startNmi(options: Partial<NmiOptions> = {}): Promise<Nmi> {
    const nmi = new Nmi({
      kube: this.kubeClient,
      nodeName: NODE,
      port: 0,
      httpProbePort: 0,
      prometheusPort: 0,
      upstreamImds: this.imds.url,
      interception: null,
      checkNetworkPlugin: false,
      nodeAddresses: ["127.0.0.1", "::1"],
      waitForAssignmentMs: 2_000,
      logger: pino({ level: process.env["NMI_TEST_LOG"] ?? "silent" }),
      ...options,
    });
    this.nmi = nmi;
    await nmi.start();
    return nmi;
  }

  async close(): Promise<void> {
    await this.nmi?.stop().catch(() => undefined);
    await Promise.all(this.#agents.map((a) => a.close()));
    await this.kubeClient.close();
    await this.cloud.close();
    await this.kube.close();
  }

  // ---- Kubernetes objects ----

  pod(name: string, ip: string, options: { namespace?: string; label?: string; hostNetwork?: boolean; node?: string; phase?: string; labels?: Record<string, string> } = {}): void {
    const labels = { ...(options.label !== undefined && { aadpodidbinding: options.label }), ...options.labels };
    this.kube.seed({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: options.namespace ?? "default", labels },
      spec: { nodeName: options.node ?? NODE, hostNetwork: options.hostNetwork ?? false, containers: [{ name: "app", image: "app:1" }] },
      status: { phase: options.phase ?? "Running", podIP: ip, podIPs: [{ ip }] },
    });
  }

  /** A type-0 AzureIdentity for a user-assigned identity of the cloud, plus a binding with `selector`. */
  identity(namespace: string, name: string, uai: UserAssignedIdentity, options: { selector?: string; annotations?: Record<string, string>; legacyKeys?: boolean } = {}): void {
    const spec = options.legacyKeys ? { type: 0, ResourceID: uai.id, ClientID: uai.clientId } : { type: 0, resourceID: uai.id, clientID: uai.clientId };
    this.kube.seed({
      apiVersion: API_GROUP_VERSION,
      kind: "AzureIdentity",
      metadata: { name, namespace, ...(options.annotations && { annotations: options.annotations }) },
      spec,
    });
    if (options.selector !== undefined) this.binding(namespace, `${name}-binding`, name, options.selector);
  }

  binding(namespace: string, name: string, identity: string, selector: string): void {
    this.kube.seed({ apiVersion: API_GROUP_VERSION, kind: "AzureIdentityBinding", metadata: { name, namespace }, spec: { azureIdentity: identity, selector } });
  }

  exception(namespace: string, name: string, podLabels: Record<string, string>): void {
    this.kube.seed({ apiVersion: API_GROUP_VERSION, kind: "AzurePodIdentityException", metadata: { name, namespace }, spec: { podLabels } });
  }

  /** The AzureAssignedIdentity MIC would create for (pod, identity), in the given state. */
  assigned(pod: { name: string; namespace: string }, identity: { name: string; namespace: string }, state: "Created" | "Assigned", namespace = identity.namespace): string {
    const name = assignedIdentityName(pod.name, pod.namespace, identity.name);
    const idObj = this.kube.getObject("azureidentities.aadpodidentity.k8s.io", identity.namespace, identity.name);
    this.kube.seed({
      apiVersion: API_GROUP_VERSION,
      kind: "AzureAssignedIdentity",
      metadata: { name, namespace, labels: { [NODENAME_LABEL]: NODE }, finalizers: [ASSIGNED_IDENTITY_FINALIZER] },
      spec: { pod: pod.name, podNamespace: pod.namespace, nodename: NODE, azureIdentityRef: idObj },
      status: { status: state },
    });
    return name;
  }

  setAssignedState(namespace: string, name: string, state: "Created" | "Assigned"): void {
    this.kube.patchObject("azureassignedidentities.aadpodidentity.k8s.io", namespace, name, { status: { status: state } });
  }

  /** Assigns the identity to this node's VM as MIC's ARM PATCH would, effective on IMDS after `delayMs`. */
  assignOnVm(uai: UserAssignedIdentity, delayMs = 0): void {
    const result = this.vm.applyIdentityPatch({ type: "UserAssigned", userAssignedIdentities: { [uai.id]: {} } }, this.cloud.registry, { effectiveAtMs: this.cloud.clock.now() + delayMs });
    if (result.notFound.length > 0) throw new Error(`assignOnVm: ${result.notFound.join(",")} not found`);
  }

  // ---- clients ----

  /** An undici agent whose connections come from `ip` (any 127.x.y.z is routed to loopback on Linux). */
  agentFrom(ip: string): Agent {
    const agent = new Agent({ localAddress: ip });
    this.#agents.push(agent);
    return agent;
  }

  /** A token request to NMI from source address `ip`. */
  async token(ip: string, query: Record<string, string> = { resource: KV }, options: { headers?: Record<string, string>; path?: string; method?: string } = {}): Promise<Answer> {
    const qs = new URLSearchParams({ "api-version": "2018-02-01", ...query }).toString();
    return this.call(ip, `${options.path ?? "/metadata/identity/oauth2/token"}?${qs}`, { headers: { metadata: "true", ...options.headers }, ...(options.method && { method: options.method }) });
  }

  async call(ip: string, path: string, options: { headers?: Record<string, string>; method?: string; body?: string } = {}): Promise<Answer> {
    if (this.nmi === undefined) throw new Error("startNmi first");
    const res = await request(`${this.nmi.url}${path}`, {
      method: (options.method ?? "GET") as "GET",
      headers: options.headers ?? {},
      ...(options.body !== undefined && { body: options.body }),
      dispatcher: this.agentFor(ip),
    });
    const text = await res.body.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    return { status: res.statusCode, headers: res.headers as Record<string, string>, body: body as Record<string, unknown>, text };
  }

  /** Sends `text` as is over a socket from `ip` and returns everything NMI wrote back (for targets undici would normalise). */
  async raw(ip: string, text: string): Promise<string> {
    if (this.nmi === undefined) throw new Error("startNmi first");
    const { port } = new URL(this.nmi.url);
    return new Promise<string>((resolve, reject) => {
      const socket = connect({ host: "127.0.0.1", port: Number(port), localAddress: ip }, () => socket.write(text));
      let out = "";
      socket.setEncoding("utf8");
      socket.on("data", (d: string) => (out += d));
      socket.on("end", () => resolve(out));
      socket.on("error", reject);
    });
  }

  readonly #byIp = new Map<string, Agent>();
  agentFor(ip: string): Agent {
    let agent = this.#byIp.get(ip);
    if (agent === undefined) this.#byIp.set(ip, (agent = this.agentFrom(ip)));
    return agent;
  }
}

export interface Answer {
  status: number;
  headers: Record<string, string>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  text: string;
}

/** Polls `check` until it returns a value other than undefined, or fails after the deadline. */
export async function eventually<T>(check: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
