import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findKubectl, realKubeUnavailableReason, TestbedCa } from "../../src/index";
import { startEmulatorBackend, startRealBackend, type Backend } from "./helpers/backends";
import { KNOWN_DIFFERENCES } from "./helpers/known-differences";
import { PROBES } from "./helpers/probes";

// Conformance by difference: every probe (raw HTTP, @kubernetes/client-node, kubectl) runs against the emulator
// and against a real kube-apiserver, and the observations must be equal — except for the probes listed in
// KNOWN_DIFFERENCES (mirrored in packages/testbed/README.md, "Known differences"), which must still differ: when
// the emulator is fixed, the entry has to go. Locally without the real server the suite is skipped with the reason;
// under CI=true it fails.
const unavailable = realKubeUnavailableReason();
const kubectl = findKubectl();
const ci = process.env["CI"] === "true";

describe.skipIf((unavailable !== undefined || kubectl === undefined) && !ci)(
  `conformance by difference: emulator vs real kube-apiserver${unavailable ? ` (${unavailable})` : ""}`,
  () => {
    let emulator: Backend;
    let real: Backend;

    beforeAll(async () => {
      if (!kubectl) throw new Error("kubectl not found: set KUBECTL, put kubectl on PATH, or run scripts/ensure-kubectl.sh");
      const ca = await TestbedCa.create();
      // The emulator reports the real server's version, so kubectl (and the preinstalled dispatcher) behave alike.
      const started = await Promise.allSettled([startRealBackend(ca, kubectl), startEmulatorBackend(ca, kubectl, "v1.20.2")]);
      const failed = started.find((r) => r.status === "rejected");
      if (failed) {
        // the other one may be up: stop it before failing
        await Promise.all(started.map((r) => (r.status === "fulfilled" ? r.value.close() : undefined)));
        throw failed.reason;
      }
      [real, emulator] = started.map((r) => (r as PromiseFulfilledResult<Backend>).value) as [Backend, Backend];
    }, 120_000);
    afterAll(async () => {
      await Promise.all([emulator?.close(), real?.close()]);
    });

    it("every known difference names a probe that exists", () => {
      const ids = new Set(PROBES.map((p) => p.id));
      expect(Object.keys(KNOWN_DIFFERENCES).filter((id) => !ids.has(id))).toEqual([]);
    });

    PROBES.forEach((probe, i) => {
      const known = KNOWN_DIFFERENCES[probe.id];
      it(`${probe.id} (${probe.what})${known ? ` — known difference: ${known.reason}` : ""}`, { timeout: 60_000 }, async () => {
        const ns = `probe-${i}`;
        for (const b of [emulator, real]) {
          const r = await b.http("POST", "/api/v1/namespaces", { body: { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } } });
          expect(r.status, `${b.name}: create namespace ${ns}: ${r.text}`).toBe(201);
        }
        const fromEmulator = await probe.run(emulator, ns);
        const fromReal = await probe.run(real, ns);
        if (known) {
          expect(fromEmulator, "this difference is gone: remove it from KNOWN_DIFFERENCES and the README").not.toEqual(fromReal);
          if (known.real !== undefined) expect(fromReal).toEqual(known.real);
          if (known.emulator !== undefined) expect(fromEmulator).toEqual(known.emulator);
        } else {
          expect(fromEmulator).toEqual(fromReal);
        }
      });
    });
  },
);
