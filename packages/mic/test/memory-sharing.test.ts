// What MIC keeps per pod is shared where it repeats (the 10,000-pod memory target, docs/benchmarks.md): the
// AzureAssignedIdentity projection reads each object once and interns what repeats, and the event recorder's
// deduplication keys are digests. These tests hold the behaviour those savings must not change.
import { API_GROUP_VERSION, ASSIGNED_IDENTITY_FINALIZER } from "@podidentity/api";
import { KubeClient, type KubeObject } from "@podidentity/kube";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { Clock } from "../src/clock";
import { EventRecorder } from "../src/runtime/event-recorder";
import { COMPUTE_RESOURCE_ANNOTATION } from "../src/state/assigned-identity-index";
import { InternPool } from "../src/state/intern-pool";
import { assignedIdentityProjection } from "../src/state/projections";
import { Harness } from "./helpers/harness";

const VMSS = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/pool0";
const managedFields = [{ manager: "podidentity-mic", operation: "Update", fieldsType: "FieldsV1", fieldsV1: { "f:spec": {} } }];

/** An AzureAssignedIdentity as the API server returns it (managed fields on it and on what it embeds). */
function assigned(pod: string, identity = "id-a", clientID = "c-1"): KubeObject {
  return {
    apiVersion: API_GROUP_VERSION,
    kind: "AzureAssignedIdentity",
    metadata: {
      name: `${pod}-default-${identity}`,
      namespace: "default",
      uid: `uid-${pod}`,
      resourceVersion: "7",
      labels: { nodename: "node-0" },
      annotations: { [COMPUTE_RESOURCE_ANNOTATION]: VMSS, "mic.podidentity.io/added-by": "mic", "mic.podidentity.io/fingerprint": `fp-${pod}` },
      finalizers: [ASSIGNED_IDENTITY_FINALIZER],
      managedFields,
    },
    spec: {
      azureIdentityRef: {
        apiVersion: API_GROUP_VERSION,
        kind: "AzureIdentity",
        metadata: { name: identity, namespace: "default", uid: `uid-${identity}`, managedFields },
        spec: { type: 0, resourceID: `/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${identity}`, clientID },
      },
      azureBindingRef: {
        apiVersion: API_GROUP_VERSION,
        kind: "AzureIdentityBinding",
        metadata: { name: `b-${identity}`, namespace: "default", uid: `uid-b-${identity}` },
        spec: { azureIdentity: identity, selector: "web" },
      },
      pod,
      podNamespace: "default",
      nodename: "node-0",
    },
    status: { status: "Assigned", availableReplicas: 1 },
  };
}

describe("the AzureAssignedIdentity projection", () => {
  it("keeps the object normalised and without managed fields, on it and on what it embeds", () => {
    const project = assignedIdentityProjection();
    // Written by pre-1.6 MIC: lowercase spec keys, status under `Status`.
    const legacy = { ...assigned("web-1"), spec: { azureidentityref: assigned("x").spec!["azureIdentityRef"], pod: "web-1", podnamespace: "default", nodename: "node-0" }, status: undefined, Status: { status: "Assigned" } };
    const object = project(legacy as KubeObject);
    expect(object.spec.azureIdentityRef?.spec.clientID).toBe("c-1");
    expect(object.spec.podNamespace).toBe("default");
    expect(object.status?.status).toBe("Assigned");
    expect(object.metadata.managedFields).toBeUndefined();
    expect(object.spec.azureIdentityRef?.metadata.managedFields).toBeUndefined();
    expect(object.metadata.annotations?.["mic.podidentity.io/fingerprint"]).toBe("fp-web-1");
  });

  it("shares one frozen embedded identity, binding, label set and finalizer list between objects that have the same", () => {
    const project = assignedIdentityProjection();
    const [a, b] = [project(assigned("web-1")), project(assigned("web-2"))];
    expect(a.spec.azureIdentityRef).toBe(b.spec.azureIdentityRef);
    expect(a.spec.azureBindingRef).toBe(b.spec.azureBindingRef);
    expect(a.metadata.labels).toBe(b.metadata.labels);
    expect(a.metadata.finalizers).toBe(b.metadata.finalizers);
    expect(Object.isFrozen(a.spec.azureIdentityRef?.spec)).toBe(true);
    expect(Object.isFrozen(a.metadata.finalizers)).toBe(true);
    // Each object keeps its own identity: only what repeats is shared.
    expect(a.metadata.uid).toBe("uid-web-1");
    expect(a.metadata.annotations).not.toBe(b.metadata.annotations);
    // A different embedded spec (the identity's clientID edited) is its own instance.
    const edited = project(assigned("web-3", "id-a", "c-2"));
    expect(edited.spec.azureIdentityRef).not.toBe(a.spec.azureIdentityRef);
    expect(edited.spec.azureIdentityRef?.spec.clientID).toBe("c-2");
  });
});

describe("InternPool", () => {
  it("returns the first instance for equal keys, and starts over once it holds maxSize values", () => {
    const pool = new InternPool<{ n: number }>(2);
    const first = pool.intern("a", () => ({ n: 1 }));
    expect(pool.intern("a", () => ({ n: 2 }))).toBe(first);
    pool.intern("b", () => ({ n: 3 }));
    expect(pool.size).toBe(2);
    pool.intern("c", () => ({ n: 4 }));
    expect(pool.size).toBe(1);
    // Forgotten, not broken: the next "a" is a new instance, and the one handed out before is untouched.
    expect(pool.intern("a", () => ({ n: 5 }))).toEqual({ n: 5 });
    expect(first).toEqual({ n: 1 });
  });

  it("refuses a bound that is not a positive integer", () => {
    expect(() => new InternPool(0)).toThrow(/InternPool: maxSize must be a positive integer, got 0/);
  });
});

describe("event deduplication", () => {
  let h: Harness | undefined;
  let client: KubeClient | undefined;
  afterEach(async () => {
    await client?.close();
    await h?.close();
    client = h = undefined;
  });

  it("writes the same event once per window, and events that differ in object, reason or message each", async () => {
    h = await Harness.start();
    client = new KubeClient(h.kubeConfig());
    let nowMs = 1_000_000;
    const clock: Clock = { now: () => nowMs, sleep: async () => undefined };
    const events = new EventRecorder(client, { clock, logger: pino({ level: "silent" }), canWrite: () => true, dedupeWindowMs: 60_000 });
    const pod = (name: string) => ({ apiVersion: "v1", kind: "Pod", name, namespace: "default", uid: `uid-${name}` });

    events.record(pod("web-1"), "Normal", "binding applied", "Binding b applied on node node-0 for pod web-1");
    events.record(pod("web-1"), "Normal", "binding applied", "Binding b applied on node node-0 for pod web-1");
    events.record(pod("web-2"), "Normal", "binding applied", "Binding b applied on node node-0 for pod web-1");
    events.record(pod("web-1"), "Warning", "binding apply error", "Binding b applied on node node-0 for pod web-1");
    events.record(pod("web-1"), "Normal", "binding applied", "Binding b applied on node node-1 for pod web-1");
    await events.flush();
    expect(h.events().length).toBe(4);

    nowMs += 59_999;
    events.record(pod("web-1"), "Normal", "binding applied", "Binding b applied on node node-0 for pod web-1");
    await events.flush();
    expect(h.events().length).toBe(4);

    nowMs += 1;
    events.record(pod("web-1"), "Normal", "binding applied", "Binding b applied on node node-0 for pod web-1");
    await events.flush();
    expect(h.events({ kind: "Pod", name: "web-1", reason: "binding applied" }).length).toBe(3);
  });
});
