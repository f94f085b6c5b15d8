import type { Logger } from "pino";
import type { ComputeIdentityState } from "../arm/compute-client";
import type { ComputeTarget } from "../arm/compute-target";
import type { Clock } from "../clock";
import type { DesiredAssignment } from "../state/desired-state";

export interface DriftRepairOptions {
  intervalMs: number;
  clock: Clock;
  logger: Logger;
  /** Every VM/VMSS that holds or should hold identities MIC manages. */
  targets(): Iterable<ComputeTarget>;
  /** Re-read ARM and repair (the engine's sync re-adds what is missing and re-adds stale entries). */
  refresh(target: ComputeTarget): void;
}

/**
 * `--identity-assignment-reconcile-interval`: every interval each VM/VMSS is re-read from ARM (not from
 * cache) and brought back in line — identities that Assigned objects need but ARM no longer shows are added
 * again (AKS upgrades used to strip them, AAD#639), and entries whose client ID ARM shows as null (the
 * identity was deleted and re-created) are removed and re-added. One pass costs one GET per VM/VMSS.
 */
export class DriftRepair {
  readonly #o: DriftRepairOptions;

  constructor(options: DriftRepairOptions) {
    if (!(options.intervalMs > 0)) throw new RangeError(`DriftRepair: intervalMs must be > 0, got ${options.intervalMs}`);
    this.#o = options;
  }

  /** Runs a pass every interval until `signal` (the leadership term) aborts. */
  start(signal: AbortSignal): void {
    void this.#run(signal);
  }

  async #run(signal: AbortSignal): Promise<void> {
    const { clock } = this.#o;
    while (!signal.aborted) {
      await clock.sleep(this.#o.intervalMs, signal);
      if (signal.aborted) return;
      this.pass();
    }
  }

  /** One pass now. */
  pass(): number {
    let n = 0;
    for (const target of this.#o.targets()) {
      this.#o.refresh(target);
      n++;
    }
    this.#o.logger.debug({ targets: n }, "drift repair pass");
    return n;
  }
}

export interface ClientIdMismatch {
  readonly assignment: DesiredAssignment;
  readonly armClientId: string;
}

/**
 * AzureIdentities whose spec.clientID is not the client ID ARM shows for their resource ID on this VM/VMSS: the
 * identity was re-created (new client ID) and the AzureIdentity not updated, so IMDS would refuse the pod's
 * requests. One entry per identity.
 */
export function clientIdMismatches(state: ComputeIdentityState, wanted: ReadonlyMap<string, ReadonlySet<string>>, lookup: (key: string) => DesiredAssignment | undefined): ClientIdMismatch[] {
  const out = new Map<string, ClientIdMismatch>();
  for (const [resourceId, keys] of wanted) {
    const armClientId = state.userAssigned.get(resourceId)?.clientId;
    if (!armClientId) continue;
    for (const key of keys) {
      const assignment = lookup(key);
      if (!assignment || assignment.clientId === "" || assignment.clientId === armClientId.toLowerCase()) continue;
      const identityKey = `${assignment.identity.metadata.namespace}/${assignment.identity.metadata.name}`;
      if (!out.has(identityKey)) out.set(identityKey, { assignment, armClientId });
    }
  }
  return [...out.values()];
}
