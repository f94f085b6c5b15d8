import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IdentityCatalog, matchPodIdentities, type PodIdentityMatches } from "../src/index";
import { binding, identity, pod } from "./helpers/objects";

const summary = (result: PodIdentityMatches) => ({
  matches: result.matches.map((m) => `${m.assignedIdentityNamespace}/${m.assignedIdentityName}`),
  skipped: result.skipped.map((s) => `${s.binding.metadata.namespace}/${s.binding.metadata.name}:${s.reason}`),
});

const NAMESPACED = { forceNamespaced: true };
const CLUSTER_WIDE = { forceNamespaced: false };

describe("IdentityCatalog.match", () => {
  it("matches a pod to the identity its binding names, in the pod's namespace", () => {
    const result = matchPodIdentities(pod("shop", "web-1", "web"), [binding("shop", "b", "kv", "web")], [identity("shop", "kv")], NAMESPACED);
    expect(summary(result)).toEqual({ matches: ["shop/web-1-shop-kv"], skipped: [] });
    expect(result.matches[0]?.namespaced).toBe(true);
  });

  it("puts cluster-wide assignments in default, as v1.8 did", () => {
    const result = matchPodIdentities(pod("shop", "web-1", "web"), [binding("shop", "b", "kv", "web")], [identity("shop", "kv")], CLUSTER_WIDE);
    expect(summary(result).matches).toEqual(["default/web-1-shop-kv"]);
  });

  it("gives nothing to a pod without the label", () => {
    const catalog = new IdentityCatalog([binding("shop", "b", "kv", "web")], [identity("shop", "kv")]);
    expect(summary(catalog.match(pod("shop", "p"), NAMESPACED))).toEqual({ matches: [], skipped: [] });
    expect(catalog.bindingsSelecting(pod("shop", "p"))).toEqual([]);
  });

  it("looks the identity up in the binding's namespace, never the pod's", () => {
    const result = matchPodIdentities(
      pod("shop", "p", "web"),
      [binding("shop", "b", "kv", "web")],
      [identity("other", "kv")],
      CLUSTER_WIDE,
    );
    expect(summary(result)).toEqual({ matches: [], skipped: ["shop/b:identity-not-found"] });
    expect(result.skipped[0]?.message).toContain("does not exist in namespace shop");
  });

  it("refuses a cross-namespace binding when namespaced (the default), and allows it when not (v1.8)", () => {
    const bindings = [binding("team-a", "b", "kv", "web")];
    const identities = [identity("team-a", "kv")];
    const intruder = pod("team-b", "p", "web");
    expect(summary(matchPodIdentities(intruder, bindings, identities, NAMESPACED))).toEqual({
      matches: [],
      skipped: ["team-a/b:namespace-mismatch"],
    });
    expect(summary(matchPodIdentities(intruder, bindings, identities, CLUSTER_WIDE)).matches).toEqual([
      "default/p-team-b-kv",
    ]);
  });

  it("honours the per-identity Behavior annotation when matching is cluster-wide", () => {
    const identities = [identity("team-a", "kv", { namespacedAnnotation: "namespaced" })];
    const result = matchPodIdentities(pod("team-b", "p", "web"), [binding("team-a", "b", "kv", "web")], identities, CLUSTER_WIDE);
    expect(summary(result).skipped).toEqual(["team-a/b:namespace-mismatch"]);
    const own = matchPodIdentities(pod("team-a", "p", "web"), [binding("team-a", "b", "kv", "web")], identities, CLUSTER_WIDE);
    expect(summary(own).matches).toEqual(["team-a/p-team-a-kv"]);
  });

  it("skips an identity that fails validation and says why (v1.8 ignored it silently)", () => {
    const bad = identity("shop", "kv", { spec: { resourceID: "kv" } });
    const result = matchPodIdentities(pod("shop", "p", "web"), [binding("shop", "b", "kv", "web")], [bad], NAMESPACED);
    expect(summary(result).skipped).toEqual(["shop/b:identity-invalid"]);
    expect(result.skipped[0]?.problems?.map((p) => p.code)).toEqual(["invalid-resource-id"]);
  });

  it("reports a binding that names no identity", () => {
    const b = binding("shop", "b", "", "web");
    expect(summary(matchPodIdentities(pod("shop", "p", "web"), [b], [], NAMESPACED)).skipped).toEqual([
      "shop/b:binding-invalid",
    ]);
  });

  it("gives a pod every identity whose bindings share its selector, in (namespace, name) order", () => {
    const bindings = [binding("shop", "z", "blob", "web"), binding("shop", "a", "kv", "web"), binding("shop", "m", "sql", "api")];
    const identities = [identity("shop", "kv"), identity("shop", "blob"), identity("shop", "sql")];
    const result = matchPodIdentities(pod("shop", "p", "web"), bindings, identities, NAMESPACED);
    expect(summary(result).matches).toEqual(["shop/p-shop-kv", "shop/p-shop-blob"]);
  });

  it("v1.8 e2e name_conflict: same-named identity and binding in two namespaces, the pod gets its own", () => {
    const bindings = [binding("ns2", "b", "id", "sel"), binding("ns1", "b", "id", "sel")];
    const identities = [identity("ns1", "id"), identity("ns2", "id")];
    const result = matchPodIdentities(pod("ns1", "p", "sel"), bindings, identities, NAMESPACED);
    expect(summary(result)).toEqual({ matches: ["ns1/p-ns1-id"], skipped: ["ns2/b:namespace-mismatch"] });
    expect(result.matches[0]?.identity.metadata.namespace).toBe("ns1");
  });

  it("cluster-wide, a duplicate assignment name goes to the binding sorting first, as in v1.8", () => {
    const bindings = [binding("ns2", "b", "id", "sel"), binding("ns1", "b", "id", "sel")];
    const identities = [identity("ns1", "id"), identity("ns2", "id")];
    const result = matchPodIdentities(pod("ns2", "p", "sel"), bindings, identities, CLUSTER_WIDE);
    expect(summary(result)).toEqual({ matches: ["default/p-ns2-id"], skipped: ["ns2/b:duplicate-assigned-name"] });
    expect(result.matches[0]?.binding.metadata.namespace).toBe("ns1");
  });

  it("gives the same answer whatever order the informers listed objects in", () => {
    const namespaces = ["a", "b"];
    const bindings = namespaces.flatMap((ns) => [binding(ns, "b1", "x", "s"), binding(ns, "b2", "y", "s"), binding(ns, "b3", "x", "t")]);
    const identities = namespaces.flatMap((ns) => [identity(ns, "x"), identity(ns, "y", { namespacedAnnotation: "namespaced" })]);
    fc.assert(
      fc.property(
        fc.shuffledSubarray(bindings, { minLength: bindings.length }),
        fc.shuffledSubarray(identities, { minLength: identities.length }),
        fc.constantFrom(...namespaces),
        fc.constantFrom("s", "t"),
        fc.boolean(),
        (bs, ids, ns, sel, forceNamespaced) => {
          const p = pod(ns, "p", sel);
          const expected = summary(matchPodIdentities(p, bindings, identities, { forceNamespaced }));
          expect(summary(matchPodIdentities(p, bs, ids, { forceNamespaced }))).toEqual(expected);
        },
      ),
    );
  });

  it("only ever matches bindings that select the pod, and when namespaced only the pod's namespace", () => {
    const namespaces = ["a", "b", "c"];
    const arbBinding = fc
      .record({ ns: fc.constantFrom(...namespaces), name: fc.constantFrom("b1", "b2"), id: fc.constantFrom("x", "y"), sel: fc.constantFrom("s", "t") })
      .map(({ ns, name, id, sel }) => binding(ns, name, id, sel));
    const arbIdentity = fc
      .record({ ns: fc.constantFrom(...namespaces), name: fc.constantFrom("x", "y"), annotated: fc.boolean() })
      .map(({ ns, name, annotated }) => identity(ns, name, annotated ? { namespacedAnnotation: "namespaced" } : {}));
    fc.assert(
      fc.property(fc.array(arbBinding), fc.array(arbIdentity), fc.constantFrom(...namespaces), fc.boolean(), (bs, ids, ns, force) => {
        const p = pod(ns, "p", "s");
        const { matches, skipped } = matchPodIdentities(p, bs, ids, { forceNamespaced: force });
        for (const m of matches) {
          expect(m.binding.spec.selector).toBe("s");
          expect(m.identity.metadata.namespace).toBe(m.binding.metadata.namespace);
          if (m.namespaced) expect(m.binding.metadata.namespace).toBe(ns);
          expect(m.assignedIdentityName).toBe(`p-${ns}-${m.identity.metadata.name}`);
        }
        expect(new Set(matches.map((m) => `${m.assignedIdentityNamespace}/${m.assignedIdentityName}`)).size).toBe(matches.length);
        // Every binding selecting the pod is accounted for exactly once.
        const selecting = bs.filter((b) => b.spec.selector === "s").length;
        expect(matches.length + skipped.length).toBe(selecting);
      }),
    );
  });
});
