import { Agent as HttpsAgent } from "node:https";
import type { PipelinePolicy } from "@azure/core-rest-pipeline";
import { ClientSecretCredential } from "@azure/identity";
import {
  API_GROUP_VERSION,
  customResourceDefinitions,
  type AzureAssignedIdentity,
} from "@podidentity/api";
import {
  AzureCloud,
  KubeApiServer,
  renderKubeconfig,
  type ArmServer,
  type ArmServerOptions,
  type ComputeResource,
  type KubeObject,
  type UserAssignedIdentity,
} from "@podidentity/testbed";
import { parseKubeConfig, type KubeConfig } from "@podidentity/kube";
import { pino } from "pino";
import { Agent } from "undici";
import { Mic, type MicOptions } from "../../src/index";

/** Makes an Azure SDK client trust the testbed CA (verification stays on). */
function trustCa(caPem: string): { policy: PipelinePolicy; position: "perCall" } {
  const agent = new HttpsAgent({ ca: caPem, keepAlive: false });
  return { position: "perCall", policy: { name: "testbedTrustCa", sendRequest: (req, next) => ((req.agent = agent), next(req)) } };
}

export interface HarnessOptions {
  arm?: Partial<Omit<ArmServerOptions, "clock" | "registry" | "compute" | "tokenIssuer" | "tls">>;
  /** Bearer token → user name: the API server then requires one (see kubeConfig(token)). */
  tokens?: Record<string, string>;
}

/**
 * A Kubernetes API server (with the four CRDs) and an Azure cloud (ARM + Entra) on 127.0.0.1, plus helpers
 * to create nodes, pods, identities and bindings and to start MIC replicas against them.
 */
export class Harness {
  readonly mics: Mic[] = [];
  #credential: ClientSecretCredential | undefined;
  #dispatcher: Agent | undefined;

  private constructor(
    readonly kube: KubeApiServer,
    readonly cloud: AzureCloud,
    readonly arm: ArmServer,
  ) {}

  static async start(options: HarnessOptions = {}): Promise<Harness> {
    const cloud = await AzureCloud.create();
    const arm = await cloud.startArm({ operationDurationMs: 200, propagationDelayMs: 0, pollRetryAfterSeconds: 1, ...options.arm });
    const entra = await cloud.startEntra();
    const kube = new KubeApiServer({ tls: cloud.ca, ...(options.tokens && { tokens: options.tokens }) });
    await kube.start();
    for (const crd of customResourceDefinitions()) kube.seed(crd as unknown as KubeObject);
    const h = new Harness(kube, cloud, arm);
    const app = cloud.addServicePrincipal({ secrets: ["mic-secret"] });
    h.#credential = new ClientSecretCredential(cloud.tenantId, app.appId, "mic-secret", {
      authorityHost: entra.url,
      disableInstanceDiscovery: true,
      additionalPolicies: [trustCa(cloud.ca.certPem)],
    });
    h.#dispatcher = new Agent({ connect: { ca: cloud.ca.certPem } });
    return h;
  }

  kubeConfig(token?: string): KubeConfig {
    return parseKubeConfig(renderKubeconfig({ server: this.kube.url, caPem: this.cloud.ca.certPem, ...(token && { token }) }), { source: "harness", baseDir: "." });
  }

  async startMic(options: Partial<MicOptions> = {}): Promise<Mic> {
    const mic = this.createMic(options);
    await mic.start();
    return mic;
  }

  /** A MIC with the harness's settings, not started (close() stops it). */
  createMic(options: Partial<MicOptions> = {}): Mic {
    const mic = new Mic({
      kubeConfig: this.kubeConfig(),
      credential: this.#credential!,
      armEndpoint: this.arm.url,
      armDispatcher: this.#dispatcher!,
      leaderElection: { enabled: false },
      batchWindowMs: 20,
      // Scaled like the window: a test's burst settles in tens of milliseconds (lifecycle.test.ts tests the default shape).
      batchQuietMs: 20,
      batchMaxWaitMs: 200,
      lroPollIntervalMs: 100,
      identityBackoffInitialMs: 300,
      identityBackoffMaxMs: 2_000,
      targetBackoffInitialMs: 100,
      targetBackoffMaxMs: 1_000,
      pollIntervalMs: 2_000,
      logger: pino({ level: process.env["MIC_TEST_LOG"] ?? "silent" }),
      ...options,
    });
    this.mics.push(mic);
    return mic;
  }

  async close(): Promise<void> {
    await Promise.all(this.mics.map((m) => m.stop()));
    await this.kube.close();
    await this.cloud.close();
    await this.#dispatcher?.close();
  }

  // ---- Azure ----

  scaleSet(name: string): ComputeResource {
    return this.cloud.addScaleSet(name);
  }

  vm(name: string): ComputeResource {
    return this.cloud.addVirtualMachine(name);
  }

  identity(name: string): UserAssignedIdentity {
    return this.cloud.createUserAssignedIdentity(name);
  }

  /** Canonical IDs of the user-assigned identities the VM/VMSS holds. */
  held(resource: ComputeResource): string[] {
    return [...resource.userAssigned.keys()].sort();
  }

  patches(resource?: ComputeResource): number {
    return this.arm.calls.filter((c) => c.method === "PATCH" && (!resource || c.path.toLowerCase() === resource.id.toLowerCase())).length;
  }

  // ---- Kubernetes ----

  node(name: string, resource: ComputeResource, instance = 0): void {
    const providerID =
      resource.kind === "virtualMachineScaleSets" ? `azure://${resource.id}/virtualMachines/${instance}` : `azure://${resource.id}`;
    this.kube.seed({ apiVersion: "v1", kind: "Node", metadata: { name }, spec: { providerID } });
  }

  pod(name: string, options: { namespace?: string; selector?: string; node: string; phase?: string }): void {
    this.kube.seed({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: options.namespace ?? "default", labels: options.selector ? { aadpodidbinding: options.selector } : {} },
      spec: { nodeName: options.node, containers: [{ name: "app", image: "app:1" }] },
      status: { phase: options.phase ?? "Running" },
    });
  }

  azureIdentity(name: string, spec: Record<string, unknown>, options: { namespace?: string; annotations?: Record<string, string> } = {}): void {
    this.kube.seed({
      apiVersion: API_GROUP_VERSION,
      kind: "AzureIdentity",
      metadata: { name, namespace: options.namespace ?? "default", ...(options.annotations && { annotations: options.annotations }) },
      spec,
    });
  }

  msiIdentity(name: string, identity: UserAssignedIdentity, namespace = "default"): void {
    this.azureIdentity(name, { type: 0, resourceID: identity.id, clientID: identity.clientId }, { namespace });
  }

  binding(name: string, identityName: string, selector: string, namespace = "default"): void {
    this.kube.seed({ apiVersion: API_GROUP_VERSION, kind: "AzureIdentityBinding", metadata: { name, namespace }, spec: { azureIdentity: identityName, selector } });
  }

  /**
   * Deletes an object as a client would. A pod on a node goes the whole way, as `kubectl delete pod` and its kubelet
   * take it: the graceful DELETE (the pod kept, terminating), then the kubelet's final one once the containers
   * stopped (grace period 0). `terminate` stops after the first, leaving the pod in its grace period.
   */
  delete(resource: string, namespace: string | undefined, name: string): void {
    this.kube.deleteObject(resource, namespace, name);
    if (resource === "pods" && this.kube.getObject("pods", namespace, name) !== undefined) this.kube.deleteObject("pods", namespace, name, { gracePeriodSeconds: 0 });
  }

  /** `kubectl delete pod` without the kubelet's end: the pod stays, with deletionTimestamp, for `gracePeriodSeconds`. */
  terminate(namespace: string, name: string, gracePeriodSeconds = 600): void {
    this.kube.deleteObject("pods", namespace, name, { gracePeriodSeconds });
  }

  assigned(): AzureAssignedIdentity[] {
    return this.kube.listObjects(`azureassignedidentities.aadpodidentity.k8s.io`) as unknown as AzureAssignedIdentity[];
  }

  assignedState(namespace: string, name: string): string | undefined {
    const o = this.kube.getObject("azureassignedidentities.aadpodidentity.k8s.io", namespace, name) as { status?: { status?: string } } | undefined;
    return o ? (o.status?.status ?? "") : undefined;
  }

  events(filter: { reason?: string; kind?: string; name?: string } = {}): Array<{ reason: string; message: string; type: string; involvedObject: { kind: string; name: string } }> {
    return (this.kube.listObjects("events") as unknown as Array<{ reason: string; message: string; type: string; involvedObject: { kind: string; name: string } }>).filter(
      (e) => (!filter.reason || e.reason === filter.reason) && (!filter.kind || e.involvedObject.kind === filter.kind) && (!filter.name || e.involvedObject.name === filter.name),
    );
  }
}

/** Polls `check` until it returns true, or fails with `what` after the deadline. */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000, intervalMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
