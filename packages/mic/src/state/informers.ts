import { API_GROUP_VERSION, AZURE_ASSIGNED_IDENTITY_NAMES, AZURE_IDENTITY_BINDING_NAMES, AZURE_IDENTITY_NAMES, POD_LABEL, type AzureAssignedIdentity, type AzureIdentity, type AzureIdentityBinding } from "@podidentity/api";
import { Informer, clockFromSleep, type KubeClient, type KubeObject } from "@podidentity/kube";
import type { Logger } from "pino";
import type { Clock } from "../clock";
import { describe } from "../errors";
import type { NodeObject, PodObject } from "./desired-state";
import { assignedIdentityProjection, projectNode, projectPod } from "./projections";

/** MIC's five informers: what it knows of the cluster. Their handlers are wired in mic.ts. */
export interface MicInformers {
  readonly pods: Informer<KubeObject & PodObject, PodObject>;
  readonly nodes: Informer<KubeObject & NodeObject, NodeObject>;
  readonly identities: Informer<KubeObject & AzureIdentity>;
  readonly bindings: Informer<KubeObject & AzureIdentityBinding>;
  readonly assigned: Informer<KubeObject, AzureAssignedIdentity>;
}

const crdPath = (plural: string): string => `/apis/${API_GROUP_VERSION}/${plural}`;

/**
 * Every informer MIC runs, constructed in this one place (not started): pods with the `aadpodidbinding` label
 * only, nodes, and the three CRDs. They back off on MIC's clock; their failures are logged here (the informer
 * itself never prints).
 */
export function createMicInformers(client: KubeClient, options: { clock: Clock; logger: Logger }): MicInformers {
  const { logger } = options;
  const clock = clockFromSleep(options.clock);
  const informer = <T extends KubeObject, P = T>(path: string, labelSelector?: string, project?: (object: T) => P): Informer<T, P> =>
    new Informer<T, P>(client, {
      path,
      ...(labelSelector !== undefined && { labelSelector }),
      // What the store keeps of each object (projections.ts): the memory lever.
      ...(project !== undefined && { project }),
      clock,
      onError: (error, retryInMs) =>
        logger.warn({ err: describe(error), path, retryInMs }, retryInMs === undefined ? "an informer handler failed" : "list/watch failed; retrying"),
    });
  return {
    pods: informer<KubeObject & PodObject, PodObject>("/api/v1/pods", POD_LABEL, projectPod),
    nodes: informer<KubeObject & NodeObject, NodeObject>("/api/v1/nodes", undefined, projectNode),
    identities: informer<KubeObject & AzureIdentity>(crdPath(AZURE_IDENTITY_NAMES.plural)),
    bindings: informer<KubeObject & AzureIdentityBinding>(crdPath(AZURE_IDENTITY_BINDING_NAMES.plural)),
    assigned: informer<KubeObject, AzureAssignedIdentity>(crdPath(AZURE_ASSIGNED_IDENTITY_NAMES.plural), undefined, assignedIdentityProjection()),
  };
}
