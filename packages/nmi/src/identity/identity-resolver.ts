import {
  ASSIGNED_IDENTITY_STATE,
  POD_LABEL,
  assignedIdentityState,
  findPodException,
  identityMatchesSelector,
  isEmptySelector,
  namespaceOf,
  nameOf,
  type AzureAssignedIdentity,
  type AzureIdentity,
  type IdentitySelector,
  type PodIdentityMatch,
} from "@podidentity/api";
import type { OperationMode } from "../config";
import type { Pod } from "../kube-objects";
import { NMI_ERROR_CODE, NmiError, redactForPod, redactId } from "../errors";
import type { IdentityStore } from "./identity-store";

export interface IdentityResolverOptions {
  store: IdentityStore;
  operationMode: OperationMode;
  forceNamespaced: boolean;
  retryAfterSeconds: number;
  now: () => number;
  /** Called when a request starts and ends waiting for an assignment (metrics). */
  onWaitStart?: () => void;
  onWait?: (outcome: "assigned" | "refused" | "timeout" | "aborted", seconds: number) => void;
}

/** An identity the pod may use now. */
export interface ResolvedIdentity {
  identity: AzureIdentity;
  /** Standard mode: the AzureAssignedIdentity that made it usable, and when NMI saw it become Assigned. */
  assigned?: AzureAssignedIdentity;
  assignedAtMs?: number;
}

export type Resolution =
  /** The pod matches an AzurePodIdentityException: its request goes to IMDS untouched. */
  | { kind: "exception"; exception: string }
  /**
   * Candidates in v1.8's order. With `objectId` set, the caller picks the candidate whose token's `oid` equals
   * it (AzureIdentity has no object ID field); otherwise the first one.
   */
  | { kind: "identities"; candidates: ResolvedIdentity[]; objectId?: string };

type Evaluation = { kind: "ready"; resolution: Resolution } | { kind: "pending"; message: string };

const podName = (pod: Pod): string => `${namespaceOf(pod)}/${nameOf(pod)}`;

/** ARM's message is cut to this many characters in NMI's answer (MIC already bounds status.error to 1024). */
const ARM_MESSAGE_MAX_LENGTH = 600;

type AssignedCheck = { ready: true; object: AzureAssignedIdentity } | { ready: false; why: string; failed?: string };

function describeSelector(s: IdentitySelector): string {
  const parts: string[] = [];
  if (s.clientId) parts.push(`client_id ${redactId(s.clientId)}`);
  if (s.resourceId) parts.push(`msi_res_id ${s.resourceId}`);
  if (s.objectId) parts.push(`object_id ${redactId(s.objectId)}`);
  return parts.join(", ");
}

/**
 * Which identity a pod's token request gets, by the rules @podidentity/api shares with MIC:
 * exception → pass through; no binding selecting the pod → 403 podidentity_no_binding at once; a requested
 * identity the pod is not bound to → 403 podidentity_not_bound; standard mode: the match's AzureAssignedIdentity
 * must be Assigned (and for the identity as it is now) — until then the request is held, woken by informer
 * events, up to the deadline, then 503 podidentity_pending + Retry-After; when MIC has recorded ARM's refusal on
 * it (`status.error`) there is nothing to wait for: 403 podidentity_assignment_failed at once, with ARM's reason.
 * Managed mode has nothing to wait for.
 */
export class IdentityResolver {
  readonly #o: IdentityResolverOptions;
  /**
   * Ready answers per pod object and selector, valid while the store's generation is unchanged: the hot path
   * (a known pod asking again) skips re-matching. Pod objects are replaced on every update, so stale pods fall out.
   */
  readonly #memo = new WeakMap<Pod, Map<string, { generation: number; resolution: Resolution }>>();

  constructor(options: IdentityResolverOptions) {
    this.#o = options;
  }

  /** The answer now, without waiting: a Resolution, undefined while pending, or a thrown refusal. */
  resolveNow(pod: Pod, selector: IdentitySelector): Resolution | undefined {
    const memoKey = `${selector.clientId ?? ""}|${selector.resourceId ?? ""}|${selector.objectId ?? ""}`;
    const generation = this.#o.store.generation;
    const memo = this.#memo.get(pod)?.get(memoKey);
    if (memo !== undefined && memo.generation === generation) return memo.resolution;
    const evaluation = this.#evaluate(pod, selector);
    if (evaluation.kind !== "ready") return undefined;
    let perPod = this.#memo.get(pod);
    if (perPod === undefined) this.#memo.set(pod, (perPod = new Map()));
    if (perPod.size < 16) perPod.set(memoKey, { generation, resolution: evaluation.resolution });
    return evaluation.resolution;
  }

  async resolve(pod: Pod, selector: IdentitySelector, waitMs: number, signal?: AbortSignal): Promise<Resolution> {
    const now = this.resolveNow(pod, selector);
    if (now !== undefined) return now;
    let evaluation = this.#evaluate(pod, selector);
    if (evaluation.kind === "ready") return evaluation.resolution;
    const started = this.#o.now();
    const deadline = performance.now() + waitMs;
    const store = this.#o.store;
    this.#o.onWaitStart?.();
    const outcome = await new Promise<"assigned" | "refused" | "timeout" | "aborted">((resolve) => {
      const finish = (result: "assigned" | "refused" | "timeout" | "aborted"): void => {
        clearTimeout(timer);
        store.off("change", onChange);
        signal?.removeEventListener("abort", onAbort);
        resolve(result);
      };
      const onChange = (): void => {
        try {
          evaluation = this.#evaluate(pod, selector);
        } catch {
          // A refusal now (e.g. the binding was removed while waiting): the re-evaluation below answers it.
          finish("refused");
          return;
        }
        if (evaluation.kind === "ready") finish("assigned");
      };
      const onAbort = (): void => finish("aborted");
      const timer = setTimeout(() => finish("timeout"), Math.max(0, deadline - performance.now()));
      store.on("change", onChange);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
    this.#o.onWait?.(outcome, (this.#o.now() - started) / 1000);
    evaluation = this.#evaluate(pod, selector);
    if (evaluation.kind === "ready") return evaluation.resolution;
    throw new NmiError(503, NMI_ERROR_CODE.Pending, `${evaluation.message}; waited ${Math.round(waitMs / 1000)} s, retry later`, {
      retryAfterSeconds: this.#o.retryAfterSeconds,
    });
  }

  /** The current answer from the caches: ready, pending, or a refusal (thrown). */
  #evaluate(pod: Pod, selector: IdentitySelector): Evaluation {
    const store = this.#o.store;
    const exception = findPodException(pod, store.exceptions());
    if (exception !== undefined) {
      return { kind: "ready", resolution: { kind: "exception", exception: `${namespaceOf(exception)}/${nameOf(exception)}` } };
    }
    const { matches, skipped } = store.catalog().match(pod, { forceNamespaced: this.#o.forceNamespaced });
    if (matches.length === 0) {
      const label = pod.metadata?.labels?.[POD_LABEL];
      const why =
        skipped.length > 0
          ? skipped.map((s) => s.message).join("; ")
          : label === undefined
            ? `the pod has no ${POD_LABEL} label`
            : `no AzureIdentityBinding has selector "${label}"`;
      throw new NmiError(403, NMI_ERROR_CODE.NoBinding, `no identity is bound to pod ${podName(pod)}: ${why}`);
    }
    const objectId = selector.objectId?.trim() || undefined;
    // object_id cannot be checked against an AzureIdentity (no such field): every match stays a candidate and
    // the token's oid decides later.
    const byIds: IdentitySelector = { clientId: selector.clientId, resourceId: selector.resourceId };
    const candidates = isEmptySelector(byIds) ? matches : matches.filter((m) => identityMatchesSelector(m.identity, byIds));
    if (candidates.length === 0) {
      throw new NmiError(
        403,
        NMI_ERROR_CODE.NotBound,
        `pod ${podName(pod)} asked for ${describeSelector(selector)}, which none of its bindings gives it; ` +
          `it may use ${matches.map((m) => `AzureIdentity ${namespaceOf(m.identity)}/${nameOf(m.identity)}`).join(", ")}`,
      );
    }
    if (this.#o.operationMode === "managed") {
      return { kind: "ready", resolution: { kind: "identities", candidates: candidates.map((m) => ({ identity: m.identity })), ...(objectId && { objectId }) } };
    }
    const ready: ResolvedIdentity[] = [];
    const waiting: string[] = [];
    const failed: string[] = [];
    for (const m of candidates) {
      const assigned = this.#assignedFor(pod, m);
      if (assigned.ready) {
        const assignedAtMs = store.assignedAtMs(assigned.object);
        ready.push({ identity: m.identity, assigned: assigned.object, ...(assignedAtMs !== undefined && { assignedAtMs }) });
      } else {
        waiting.push(assigned.why);
        if (assigned.failed !== undefined) failed.push(assigned.failed);
      }
    }
    // With no identity named, v1.8 returned the Assigned ones as soon as there were any; with object_id every
    // candidate must be ready, since any of them may be the one asked for.
    const enough = objectId !== undefined ? waiting.length === 0 : ready.length > 0;
    if (enough) return { kind: "ready", resolution: { kind: "identities", candidates: ready, ...(objectId && { objectId }) } };
    // Nothing to wait for when what is missing is an assignment ARM refused: answer now, with ARM's reason.
    if (failed.length > 0 && (objectId !== undefined || failed.length === waiting.length)) {
      throw new NmiError(403, NMI_ERROR_CODE.AssignmentFailed, `the identity of pod ${podName(pod)} cannot be assigned to node ${pod.spec?.nodeName ?? "?"}: ${failed.join("; ")}`);
    }
    return { kind: "pending", message: `the identity of pod ${podName(pod)} is not assigned to node yet: ${waiting.join("; ")}` };
  }

  #assignedFor(pod: Pod, m: PodIdentityMatch): AssignedCheck {
    const where = `AzureAssignedIdentity ${m.assignedIdentityNamespace}/${m.assignedIdentityName}`;
    const assigned = this.#o.store.assignedIdentity(m.assignedIdentityNamespace, m.assignedIdentityName);
    if (assigned === undefined) return { ready: false, why: `${where} does not exist yet (MIC creates it)` };
    if (assigned.spec.pod !== nameOf(pod) || (assigned.spec.podNamespace ?? "") !== namespaceOf(pod)) {
      return { ready: false, why: `${where} belongs to another pod` };
    }
    const state = assignedIdentityState(assigned);
    if (state !== ASSIGNED_IDENTITY_STATE.Assigned) {
      const why = `${where} is ${state ?? "in an unknown state"}`;
      const error = assigned.status?.error;
      // MIC's record of ARM's refusal counts only while the object is for the AzureIdentity as it is now: after an
      // edit (a new resourceID) MIC replaces it, and the request waits for the new one instead.
      if (error === undefined || !sameIdentity(assigned.spec.azureIdentityRef, m.identity)) return { ready: false, why };
      const since = error.lastTransitionTime === undefined ? "" : ` (since ${error.lastTransitionTime})`;
      const failed =
        `MIC could not assign AzureIdentity ${namespaceOf(m.identity)}/${nameOf(m.identity)}${since}: ARM answered ${error.code}: ` +
        `${redactForPod(error.message, ARM_MESSAGE_MAX_LENGTH)}; fix the AzureIdentity's resourceID, the identity in Azure or MIC's permissions ` +
        `(MIC retries with backoff, and at once when the AzureIdentity is edited); details: kubectl describe azureassignedidentity ${m.assignedIdentityName} -n ${m.assignedIdentityNamespace}`;
      return { ready: false, why, failed };
    }
    // The identity changed (e.g. a new clientID) and MIC has not caught up: the node may still hold the old one.
    const refClientId = assigned.spec.azureIdentityRef?.spec.clientID;
    const nowClientId = m.identity.spec.clientID;
    if (refClientId !== undefined && nowClientId !== undefined && refClientId.toLowerCase() !== nowClientId.toLowerCase()) {
      return { ready: false, why: `${where} is for the identity's previous clientID` };
    }
    return { ready: true, object: assigned };
  }
}

/** The AzureAssignedIdentity's embedded AzureIdentity names the same resource and client as the AzureIdentity now. */
function sameIdentity(ref: AzureIdentity | undefined, now: AzureIdentity): boolean {
  const same = (a: string | undefined, b: string | undefined): boolean => (a ?? "").toLowerCase() === (b ?? "").toLowerCase();
  return ref !== undefined && same(ref.spec.resourceID, now.spec.resourceID) && same(ref.spec.clientID, now.spec.clientID);
}
