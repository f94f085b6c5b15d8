import {
  API_GROUP_VERSION,
  formatProblems,
  nameOf,
  namespaceOf,
  type AzureIdentity,
  type AzureIdentityBinding,
  type Normalized,
  type SkippedBinding,
} from "@podidentity/api";
import type { PodObject } from "../state/desired-state";
import type { ClientIdMismatch } from "../assignment/drift-repair";
import type { EventRecorder, InvolvedObject } from "./event-recorder";

function ref(kind: string, object: AzureIdentity | AzureIdentityBinding): InvolvedObject {
  return { apiVersion: API_GROUP_VERSION, kind, name: nameOf(object), namespace: namespaceOf(object), ...(object.metadata.uid && { uid: object.metadata.uid }) };
}

/**
 * Bad input becomes Warning events where users look, never a crash or a blocked queue: invalid identities and
 * bindings (on themselves), bindings that select a pod but give it nothing (on the pod and the binding), an
 * AzureIdentity whose clientID is not the one Azure shows.
 */
export class ProblemReporter {
  readonly #events: EventRecorder;

  constructor(events: EventRecorder) {
    this.#events = events;
  }

  invalid(kind: "AzureIdentity" | "AzureIdentityBinding", normalized: Normalized<AzureIdentity> | Normalized<AzureIdentityBinding>): void {
    if (normalized.ok) return;
    const object = normalized.object;
    const message = formatProblems(normalized.problems.filter((p) => p.severity === "error"));
    this.#events.record(ref(kind, object), "Warning", "invalid", `${kind} ${namespaceOf(object)}/${nameOf(object)} cannot be used: ${message}`);
  }

  skipped(list: Iterable<{ pod: PodObject; skipped: readonly SkippedBinding[] }>): void {
    for (const { pod, skipped } of list) {
      for (const skip of skipped) {
        const podRef = { apiVersion: "v1", kind: "Pod", name: nameOf(pod), namespace: namespaceOf(pod), ...(pod.metadata?.uid && { uid: pod.metadata.uid }) };
        this.#events.record(podRef, "Warning", "binding apply error", skip.message);
        this.#events.record(ref("AzureIdentityBinding", skip.binding), "Warning", "binding apply error", skip.message);
      }
    }
  }

  clientIdMismatch(m: ClientIdMismatch): void {
    const identity = m.assignment.identity;
    this.#events.record(
      ref("AzureIdentity", identity),
      "Warning",
      "ClientIDMismatch",
      `AzureIdentity ${namespaceOf(identity)}/${nameOf(identity)} has clientID ${identity.spec.clientID}, but Azure shows client ID ${m.armClientId} for ${identity.spec.resourceID} (re-created?); update spec.clientID`,
    );
  }

  /** A new leader reports what a standby could not. */
  reportAll(
    identities: Iterable<unknown>,
    bindings: Iterable<unknown>,
    skipped: Iterable<{ pod: PodObject; skipped: readonly SkippedBinding[] }>,
    normalize: { identity(raw: unknown): Normalized<AzureIdentity>; binding(raw: unknown): Normalized<AzureIdentityBinding> },
  ): void {
    for (const raw of identities) this.invalid("AzureIdentity", normalize.identity(raw));
    for (const raw of bindings) this.invalid("AzureIdentityBinding", normalize.binding(raw));
    this.skipped(skipped);
  }
}
