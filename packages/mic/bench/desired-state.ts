// Desired-state CPU for 10,000 pods / 1,000 bindings and identities / 100 nodes, in its own process (spawned
// by run.ts with --expose-gc); prints one JSON line.
import { normalizeAzureIdentity, normalizeAzureIdentityBinding } from "@podidentity/api";
import { DesiredState, nodeComputeTarget, type NodeObject } from "@podidentity/mic";

/**
 * Desired-state computation alone: 10,000 pods, 1,000 bindings/identities, 100 nodes. Measured on a fresh
 * instance after one warm-up pass on another (a running controller's code is JIT-compiled; the cold first pass
 * is reported too).
 */
export function desiredStateCpu(): { coldMs: number; fullMs: number; podEventUs: number; bindingEventUs: number } {
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
  gc();
  const cold = desiredStatePass();
  // V8 needs a few passes to optimise the hot paths; a running controller is long past that.
  for (let i = 0; i < 3; i++) desiredStatePass();
  const warm = [];
  for (let i = 0; i < 5; i++) {
    gc();
    warm.push(desiredStatePass());
  }
  warm.sort((a, b) => a.fullMs - b.fullMs);
  // The median of five warm passes (a garbage collection before each, none inside the measurement if avoidable).
  return { ...warm[2]!, coldMs: cold.fullMs };
}

function desiredStatePass(): { fullMs: number; podEventUs: number; bindingEventUs: number } {
  const ds = new DesiredState({ forceNamespaced: true, nodeTarget: (n: NodeObject) => nodeComputeTarget(n, {}) });
  const sub = "00000000-0000-0000-0000-000000000000";
  for (let n = 0; n < 100; n++) {
    ds.upsertNode({ metadata: { name: `node-${n}` }, spec: { providerID: `azure:///subscriptions/${sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/pool${n % 4}/virtualMachines/${n}` } });
  }
  const ns = (i: number): string => `ns-${i % 10}`;
  for (let i = 0; i < 1_000; i++) {
    ds.upsertIdentity(normalizeAzureIdentity({ metadata: { name: `id-${i}`, namespace: ns(i) }, spec: { type: 0, resourceID: `/subscriptions/${sub}/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai-${i}`, clientID: `c-${i}` } }).object);
    ds.upsertBinding(normalizeAzureIdentityBinding({ metadata: { name: `b-${i}`, namespace: ns(i) }, spec: { azureIdentity: `id-${i}`, selector: `app-${i}` } }).object);
  }
  const pod = (p: number, label = `app-${p % 1_000}`) => ({ metadata: { name: `pod-${p}`, namespace: ns(p % 1_000), labels: { aadpodidbinding: label }, uid: `u-${p}` }, spec: { nodeName: `node-${p % 100}` }, status: { phase: "Running" } });
  // The pods arrive as informer objects: build them outside the measurement.
  const pods = Array.from({ length: 10_000 }, (_, p) => pod(p));
  const relabelled = Array.from({ length: 1_000 }, (_, p) => pod(p, `app-${(p + 1) % 1_000}`));
  const t0 = process.cpuUsage();
  for (const p of pods) ds.upsertPod(p);
  const full = process.cpuUsage(t0);
  if (ds.size !== 10_000) throw new Error(`expected 10,000 desired assignments, got ${ds.size}`);
  const t1 = process.cpuUsage();
  for (const p of relabelled) ds.upsertPod(p);
  const podEvents = process.cpuUsage(t1);
  const t2 = process.cpuUsage();
  for (let i = 0; i < 100; i++) ds.upsertBinding(normalizeAzureIdentityBinding({ metadata: { name: `b-${i}`, namespace: ns(i) }, spec: { azureIdentity: `id-${i}`, selector: `app-${i}`, weight: i } }).object);
  const bindingEvents = process.cpuUsage(t2);
  const ms = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;
  return { fullMs: ms(full), podEventUs: (ms(podEvents) * 1000) / 1_000, bindingEventUs: (ms(bindingEvents) * 1000) / 100 };
}


process.stdout.write(`${JSON.stringify(desiredStateCpu())}\n`);
