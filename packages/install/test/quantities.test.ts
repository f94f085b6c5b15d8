import { canonicalQuantity } from "@podidentity/testbed";
import { describe, expect, it } from "vitest";
import { renderManifests } from "../src/index";

/** Every quantity of a pod spec: container requests/limits, emptyDir size limits. */
function quantities(manifest: unknown): Array<{ at: string; value: string }> {
  const out: Array<{ at: string; value: string }> = [];
  const walk = (v: unknown, at: string): void => {
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${at}[${i}]`));
    else if (typeof v === "object" && v !== null) {
      for (const [k, x] of Object.entries(v)) {
        if ((k === "requests" || k === "limits") && typeof x === "object" && x !== null) for (const [r, q] of Object.entries(x)) out.push({ at: `${at}.${k}.${r}`, value: String(q) });
        else if (k === "sizeLimit") out.push({ at: `${at}.sizeLimit`, value: String(x) });
        else walk(x, `${at}.${k}`);
      }
    }
  };
  walk(manifest, "");
  return out;
}

describe("rendered quantities", () => {
  it("are in the canonical form the API server stores (so a second kubectl apply finds nothing to change)", () => {
    for (const mode of ["standard", "managed"] as const) {
      const found = renderManifests({ mode }).flatMap((m) => quantities(m).map((q) => ({ ...q, at: `${m.kind}/${m.metadata?.name ?? ""}${q.at}` })));
      expect(found.length).toBeGreaterThan(0);
      for (const q of found) expect(q.value, q.at).toBe(canonicalQuantity(q.value));
    }
  });

  it("MIC's memory limit is 1Gi (was 1024Mi, which the API server stores as 1Gi)", () => {
    const deployment = renderManifests().find((m) => m.kind === "Deployment") as { spec: { template: { spec: { containers: Array<{ resources: { limits: Record<string, string> } }> } } } };
    expect(deployment.spec.template.spec.containers[0]?.resources.limits["memory"]).toBe("1Gi");
  });
});
