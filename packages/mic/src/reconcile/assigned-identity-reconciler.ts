import { createHash, randomBytes } from "node:crypto";
import {
  API_GROUP_VERSION,
  ASSIGNED_IDENTITY_FINALIZER,
  ASSIGNED_IDENTITY_STATE,
  ASSIGNMENT_ERROR_MAX_MESSAGE_LENGTH,
  AZURE_ASSIGNED_IDENTITY_NAMES,
  IDENTITY_TYPE,
  NODENAME_LABEL,
  nameOf,
  namespaceOf,
  type AzureIdentity,
  type AzureIdentityBinding,
} from "@podidentity/api";
import type { Logger } from "pino";
import { KubeApiError } from "@podidentity/kube";
import type { AddedByRecord } from "../assignment/added-by-record";
import type { AssignmentEngine, IdentityFailure } from "../assignment/assignment-engine";
import type { ComputeTarget } from "../arm/compute-target";
import type { Clock } from "../clock";
import { TerminalError, describe } from "../errors";
import type { EventRecorder, InvolvedObject } from "../runtime/event-recorder";
import { COMPUTE_RESOURCE_ANNOTATION, FINGERPRINT_ANNOTATION, ADDED_BY_ANNOTATION, type AssignedIdentityIndex, type IndexedAssignment } from "../state/assigned-identity-index";
import type { AssignedIdentityWriter } from "../state/assigned-identity-writer";
import { assignmentFingerprint, desiredFingerprint, type DesiredAssignment, type DesiredState } from "../state/desired-state";
import type { ReconcileResult } from "./work-queue";

export interface AssignedIdentityReconcilerOptions {
  desired: DesiredState;
  index: AssignedIdentityIndex;
  engine: AssignmentEngine;
  writer: AssignedIdentityWriter;
  record: AddedByRecord;
  events: EventRecorder;
  clock: Clock;
  logger: Logger;
  isImmutable(clientId: string | null | undefined): boolean;
  /** Called when an assignment becomes Assigned, with the time since MIC first wanted it. */
  onAssigned?(seconds: number): void;
  /** Re-check an assignment whose identity ARM has not shown yet after this long, even without a wake-up. */
  pollIntervalMs: number;
}

export function fingerprintHash(fingerprint: string): string {
  return createHash("sha256").update(fingerprint).digest("hex").slice(0, 32);
}

function embed<T extends AzureIdentity | AzureIdentityBinding>(object: T): T {
  const m = object.metadata;
  return {
    apiVersion: object.apiVersion,
    kind: object.kind,
    metadata: {
      name: m.name,
      namespace: namespaceOf(object),
      ...(m.uid !== undefined && { uid: m.uid }),
      ...(m.annotations !== undefined && { annotations: m.annotations }),
    },
    spec: object.spec,
  } as T;
}

/**
 * One AzureAssignedIdentity, level-based: read what should exist (DesiredState), what does (the index), and what
 * ARM holds (the engine's last observation); take the next step of v1.8's lifecycle
 * (none → Created → Assigned; Assigned → Unassigned → deleted) and return.
 *
 * Removal from the VM/VMSS is decided per (VM/VMSS, identity), not per object: only when no pod there needs it,
 * it is not immutable, and an object records that MIC added it (`mic.podidentity.io/added-by`). The finalizer
 * holds the last such record until the engine has removed the identity.
 */
export class AssignedIdentityReconciler {
  readonly #o: AssignedIdentityReconcilerOptions;
  readonly #releaseTickets = new Map<string, number>();
  readonly #assignTickets = new Map<string, { ticket: number; atMs: number }>();
  readonly #wantedSince = new Map<string, number>();

  constructor(options: AssignedIdentityReconcilerOptions) {
    this.#o = options;
  }

  /** Forget per-term memory (tickets refer to an engine that no longer runs). */
  reset(): void {
    this.#releaseTickets.clear();
    this.#assignTickets.clear();
  }

  /**
   * One run for `key`. Every log line of the run carries the same `reconcileId` (and the key); a failure is logged
   * here once, as terminal (TerminalError: not retried) or as retried with backoff, and rethrown for the queue.
   */
  async reconcile(key: string): Promise<ReconcileResult | void> {
    const log = this.#o.logger.child({ reconcileId: randomBytes(4).toString("hex"), key });
    const desired = this.#o.desired.get(key);
    const existing = this.#o.index.get(key);
    log.debug({ desired: desired !== undefined, exists: existing !== undefined, state: existing?.state, terminating: existing?.terminating }, "reconciling");
    try {
      const result = await this.#reconcile(key, desired, existing, log);
      log.debug({ requeueAfterMs: result?.requeueAfterMs }, "reconciled");
      return result;
    } catch (error) {
      if (error instanceof TerminalError) log.error({ err: describe(error) }, "reconcile cannot succeed; not retrying");
      else log.warn({ err: describe(error) }, "reconcile failed; retrying with backoff");
      throw error;
    }
  }

  async #reconcile(key: string, desired: DesiredAssignment | undefined, existing: IndexedAssignment | undefined, log: Logger): Promise<ReconcileResult | void> {
    if (desired && !this.#wantedSince.has(key)) this.#wantedSince.set(key, this.#o.clock.now());
    if (!desired) this.#wantedSince.delete(key);
    if (!existing) return desired ? this.#create(desired) : undefined;
    if (desired && !existing.terminating) {
      const fingerprint = desiredFingerprint(desired);
      if (existing.fingerprint === fingerprintHash(fingerprint)) return this.#converge(desired, existing);
      if (existing.fingerprint === undefined && legacyFingerprint(existing) === fingerprint) {
        // A v1.8 object that still describes this pod: adopt it (annotations only; who-added stays "legacy").
        log.debug("adopting a v1.8 AzureAssignedIdentity");
        const adopted = await this.#o.writer.patch(existing, { metadata: { annotations: this.#annotations(desired, undefined) } });
        return this.#converge(desired, adopted);
      }
      if (existing.target?.key === desired.target?.key && existing.resourceId === desired.resourceId && existing.identityType === desired.identityType) {
        return this.#update(desired, existing);
      }
      log.debug({ existingTarget: existing.target?.key, target: desired.target?.key, existingId: existing.resourceId, id: desired.resourceId, types: [existing.identityType, desired.identityType] }, "assignment changed: replacing it");
    }
    return this.#release(existing, log);
  }

  #annotations(desired: DesiredAssignment, addedBy: string | undefined): Record<string, string> {
    return {
      [FINGERPRINT_ANNOTATION]: fingerprintHash(desiredFingerprint(desired)),
      ...(desired.target && { [COMPUTE_RESOURCE_ANNOTATION]: desired.target.resourceId }),
      ...(addedBy !== undefined && { [ADDED_BY_ANNOTATION]: addedBy }),
    };
  }

  #spec(desired: DesiredAssignment): Record<string, unknown> {
    return {
      azureIdentityRef: embed(desired.identity),
      azureBindingRef: embed(desired.binding),
      pod: desired.pod,
      podNamespace: desired.podNamespace,
      nodename: desired.nodeName,
    };
  }

  async #create(desired: DesiredAssignment): Promise<ReconcileResult | void> {
    const userAssigned = desired.identityType === IDENTITY_TYPE.UserAssignedMSI;
    const addedBy = userAssigned && desired.target && desired.resourceId ? (this.#o.record.addedByMic(desired.target.key, desired.resourceId) ? "mic" : "pending") : undefined;
    const body = {
      apiVersion: API_GROUP_VERSION,
      kind: AZURE_ASSIGNED_IDENTITY_NAMES.kind,
      metadata: {
        name: desired.name,
        namespace: desired.namespace,
        labels: { [NODENAME_LABEL]: desired.nodeName },
        annotations: this.#annotations(desired, addedBy),
        finalizers: [ASSIGNED_IDENTITY_FINALIZER],
      },
      spec: this.#spec(desired),
      // Service principals need no ARM call: Assigned at once. The CRD has no status subresource, so status is
      // written with the object in one request (as v1.8).
      status: { status: userAssigned ? ASSIGNED_IDENTITY_STATE.Created : ASSIGNED_IDENTITY_STATE.Assigned, availableReplicas: 1 },
    };
    try {
      await this.#o.writer.create(desired.namespace, body);
    } catch (error) {
      // Our cache is behind: read the object and decide again.
      if (error instanceof KubeApiError && error.isConflict) {
        await this.#o.writer.refresh(desired.namespace, desired.name);
        return { requeueAfterMs: 0 };
      }
      throw this.#refused(desired, "create", error);
    }
    if (userAssigned) {
      if (desired.target) this.#requestAssign(desired.key, desired.target);
      else this.#noTarget(desired);
    } else {
      this.#assigned(desired);
    }
  }

  async #update(desired: DesiredAssignment, existing: IndexedAssignment): Promise<void> {
    // Same pod, VM/VMSS and identity resource, but the identity's or binding's spec changed: replace the spec
    // in place (as v1.8), keeping the who-added record and the state, which ARM-wise are unchanged.
    const raw = structuredClone(existing.object) as unknown as Record<string, unknown> & { metadata: Record<string, unknown> };
    raw.metadata["annotations"] = { ...(existing.object.metadata.annotations ?? {}), ...this.#annotations(desired, undefined) };
    raw.metadata["labels"] = { ...(existing.object.metadata.labels ?? {}), [NODENAME_LABEL]: desired.nodeName };
    raw["spec"] = this.#spec(desired);
    try {
      await this.#o.writer.replace(desired.namespace, desired.name, raw);
    } catch (error) {
      throw this.#refused(desired, "update", error);
    }
  }

  /**
   * A failed create or update, as the queue should see it. The API server refusing the object itself (400/422, e.g.
   * a name over 253 characters: v1.8's naming is not truncated) fails the same way every time: a TerminalError, not
   * retried until the pod, binding or identity changes, and told to the user on the pod. Anything else (409 on an
   * update, 5xx, network, lost leadership) is rethrown as it is and retried with the queue's backoff.
   */
  #refused(desired: DesiredAssignment, verb: "create" | "update", error: unknown): unknown {
    if (!(error instanceof KubeApiError && (error.status === 422 || error.status === 400))) return error;
    const message = `Cannot ${verb} AzureAssignedIdentity ${desired.key}: ${error.message}`;
    this.#o.events.record(podRef(desired), "Warning", "binding apply error", message);
    return new TerminalError(message, { code: "mic.assigned_identity_invalid", cause: error });
  }

  async #converge(desired: DesiredAssignment, existing: IndexedAssignment): Promise<ReconcileResult | void> {
    // Wanted (again): a release under way is over, and a later one must wait for a sync of its own.
    this.#releaseTickets.delete(existing.key);
    const assigned = existing.state === ASSIGNED_IDENTITY_STATE.Assigned;
    if (desired.identityType !== IDENTITY_TYPE.UserAssignedMSI) return assigned ? undefined : this.#markAssigned(desired, existing, undefined);
    const target = desired.target;
    const resourceId = desired.resourceId;
    if (!target || !resourceId) {
      if (!assigned) this.#noTarget(desired);
      return;
    }
    const engine = this.#o.engine;
    const observation = engine.observation(target.key);
    const held = observation?.state.userAssigned.get(resourceId);
    const settled = !/^updating$/i.test(observation?.state.provisioningState ?? "");
    if (assigned) {
      // Assigned only while the identity is on the VM/VMSS. A sync removes what no pod there needs when it plans,
      // so one planned while the pod was unbound and completed after it was bound again (or any removal since)
      // takes the identity away under an Assigned object; every completed sync wakes the objects on its VM/VMSS,
      // so this sees it: Created again, and assigned anew.
      if (!observation?.state.exists || held || !settled) return;
      await this.#o.writer.patch(existing, { status: { status: ASSIGNED_IDENTITY_STATE.Created } });
      this.#requestAssign(desired.key, target);
      return { requeueAfterMs: this.#o.pollIntervalMs };
    }
    if (held && held.clientId !== null && settled) {
      const addedBy = existing.addedBy === "legacy" ? undefined : this.#o.record.addedByMic(target.key, resourceId) ? "mic" : "pre-existing";
      return this.#markAssigned(desired, existing, addedBy);
    }
    const now = this.#o.clock.now();
    const failure = engine.failure(target.key, resourceId);
    if (failure && failure.retryAtMs > now) {
      const message = `Applying binding ${nameOf(desired.binding)} node ${desired.nodeName} for pod ${desired.pod} resulted in error ${failure.message}`;
      this.#o.events.record(bindingRef(desired.binding), "Warning", "binding apply error", message);
      this.#o.events.record(podRef(desired), "Warning", "binding apply error", message);
      if (failure.permanent) await this.#recordError(existing, failure.permanent);
      return { requeueAfterMs: failure.retryAtMs - now + 50 };
    }
    const pending = this.#assignTickets.get(desired.key);
    if (pending && (observation?.completed ?? 0) < pending.ticket) return { requeueAfterMs: this.#o.pollIntervalMs };
    if (pending && now - pending.atMs < 5_000) return { requeueAfterMs: 5_000 - (now - pending.atMs) };
    this.#requestAssign(desired.key, target);
    return { requeueAfterMs: this.#o.pollIntervalMs };
  }

  #requestAssign(key: string, target: ComputeTarget): void {
    this.#assignTickets.set(key, { ticket: this.#o.engine.request(target), atMs: this.#o.clock.now() });
  }

  #noTarget(desired: DesiredAssignment): void {
    this.#o.events.record(
      podRef(desired),
      "Warning",
      "binding apply error",
      `Node ${desired.nodeName} has no Azure VM or VMSS provider ID (spec.providerID); cannot assign identity ${nameOf(desired.identity)}`,
    );
  }

  /**
   * `status.error`: ARM's code and message for a failure retrying alone will not fix, so NMI can answer at once
   * and `kubectl describe` shows why. `status.status` stays Created (what v1.8 readers understand); written only
   * when the error differs from what the object already says.
   */
  async #recordError(existing: IndexedAssignment, error: NonNullable<IdentityFailure["permanent"]>): Promise<void> {
    const message = error.message.length > ASSIGNMENT_ERROR_MAX_MESSAGE_LENGTH ? `${error.message.slice(0, ASSIGNMENT_ERROR_MAX_MESSAGE_LENGTH - 1)}…` : error.message;
    const current = existing.object.status?.error;
    if (current?.code === error.code && current.message === message) return;
    const lastTransitionTime = new Date(error.sinceMs).toISOString().replace(/\.\d+Z$/, "Z");
    await this.#o.writer.patch(existing, { status: { error: { code: error.code, message, lastTransitionTime } } });
  }

  async #markAssigned(desired: DesiredAssignment, existing: IndexedAssignment, addedBy: string | undefined): Promise<void> {
    await this.#o.writer.patch(existing, {
      metadata: { annotations: this.#annotations(desired, addedBy) },
      // Merge patch: null removes a permanent error recorded by an earlier attempt.
      status: { status: ASSIGNED_IDENTITY_STATE.Assigned, availableReplicas: 1, ...(existing.object.status?.error && { error: null }) },
    });
    this.#assignTickets.delete(desired.key);
    this.#assigned(desired);
  }

  #assigned(desired: DesiredAssignment): void {
    const since = this.#wantedSince.get(desired.key);
    if (since !== undefined) this.#o.onAssigned?.((this.#o.clock.now() - since) / 1000);
    const message = `Binding ${nameOf(desired.binding)} applied on node ${desired.nodeName} for pod ${desired.pod}`;
    this.#o.events.record(bindingRef(desired.binding), "Normal", "binding applied", message);
    this.#o.events.record(podRef(desired), "Normal", "binding applied", message);
  }

  async #release(existing: IndexedAssignment, log: Logger): Promise<ReconcileResult | void> {
    const { index, desired, engine, record } = this.#o;
    const target = existing.target;
    const resourceId = existing.resourceId;
    if (target && resourceId && existing.identityType === IDENTITY_TYPE.UserAssignedMSI) {
      // Decide only once the VM/VMSS has settled: a sync already in flight may be about to add this identity
      // (its "added by MIC" record is written before its PATCH), and deciding from the record as it was before
      // would leak the identity.
      let ticket = this.#releaseTickets.get(existing.key);
      if (ticket === undefined) {
        ticket = engine.request(target);
        this.#releaseTickets.set(existing.key, ticket);
      }
      const observation = engine.observation(target.key);
      if (!observation || observation.completed < ticket) return { requeueAfterMs: this.#o.pollIntervalMs };
      existing = index.get(existing.key) ?? existing;
      log.debug({ target: target.resourceId, resourceId, addedBy: existing.addedBy, state: existing.state }, "releasing");
      const others = [...(desired.wanted(target.key).get(resourceId) ?? [])].filter((k) => k !== existing.key);
      if (others.length > 0) {
        // Other pods there still need it: no ARM call, but the "MIC added it" record must outlive this object.
        if (!(await record.handOver(existing, target.key, resourceId))) return { requeueAfterMs: 200 };
      } else if (record.addedByMic(target.key, resourceId) && !this.#o.isImmutable(existing.clientId)) {
        if (existing.state === ASSIGNED_IDENTITY_STATE.Assigned && !existing.terminating) {
          existing = await this.#o.writer.patch(existing, { status: { status: ASSIGNED_IDENTITY_STATE.Unassigned } });
        }
        const held = observation.state.userAssigned.get(resourceId);
        if (observation.state.exists && held && !this.#o.isImmutable(held.clientId)) {
          // Still there: the next sync removes it (the engine's planner now sees it as removable).
          this.#releaseTickets.set(existing.key, engine.request(target));
          return { requeueAfterMs: this.#o.pollIntervalMs };
        }
      }
    }
    await this.#o.writer.finalize(existing);
    this.#releaseTickets.delete(existing.key);
  }
}

function legacyFingerprint(existing: IndexedAssignment): string | undefined {
  const { azureIdentityRef, azureBindingRef, pod, podNamespace, nodename } = existing.object.spec;
  if (!azureIdentityRef || !azureBindingRef || !pod || !podNamespace || !nodename) return undefined;
  return assignmentFingerprint(azureIdentityRef, azureBindingRef, pod, podNamespace, nodename);
}

function podRef(desired: DesiredAssignment): InvolvedObject {
  return { apiVersion: "v1", kind: "Pod", name: desired.pod, namespace: desired.podNamespace, ...(desired.podUid && { uid: desired.podUid }) };
}

function bindingRef(binding: AzureIdentityBinding): InvolvedObject {
  return {
    apiVersion: API_GROUP_VERSION,
    kind: binding.kind,
    name: nameOf(binding),
    namespace: namespaceOf(binding),
    ...(binding.metadata.uid && { uid: binding.metadata.uid }),
  };
}
