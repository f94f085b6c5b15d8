import { describe, expect, it } from "vitest";
import { applyMergePatch, applyStrategicMergePatch } from "../../src/kube/patch";
import { applyDefaults, pruneObject, validateValue } from "../../src/kube/schema";
import type { JsonSchemaProps } from "../../src/kube/schema";
import { parseFieldSelector, parseLabelSelector } from "../../src/kube/selectors";
import { KubeStatusError } from "../../src/kube/status-errors";
import type { FieldError } from "../../src/kube/status-errors";
import { humanDuration } from "../../src/kube/table";

describe("label selector parsing", () => {
  it("parses every operator", () => {
    const s = parseLabelSelector("a=1,b==2,c!=3,d in (x, y),e notin (z),f,!g,h>4,i<5");
    expect(s.requirements.map((r) => [r.key, r.operator, r.values])).toEqual([
      ["a", "=", ["1"]],
      ["b", "=", ["2"]],
      ["c", "!=", ["3"]],
      ["d", "in", ["x", "y"]],
      ["e", "notin", ["z"]],
      ["f", "exists", []],
      ["g", "!", []],
      ["h", "gt", ["4"]],
      ["i", "lt", ["5"]],
    ]);
    expect(s.matches({ a: "1", b: "2", d: "y", f: "", h: "10", i: "0" })).toBe(true);
    expect(s.matches({ a: "1", b: "2", d: "y", f: "", h: "10", i: "0", g: "present" })).toBe(false);
  });

  it("accepts prefixed keys and empty values, and rejects bad ones with 400", () => {
    expect(parseLabelSelector("example.com/app=").matches({ "example.com/app": "" })).toBe(true);
    for (const bad of ["a=b c", "UPPER.example/x=y", "a=-b", `a=${"x".repeat(64)}`, "in (x)", "a notin x"]) {
      expect(() => parseLabelSelector(bad), bad).toThrow(KubeStatusError);
    }
  });
});

describe("field selector parsing", () => {
  const supported = new Set(["metadata.name", "spec.nodeName"]);
  it("handles escapes and != ", () => {
    const s = parseFieldSelector("metadata.name=a\\,b,spec.nodeName!=n1", supported);
    expect(s.requirements).toEqual([
      { field: "metadata.name", operator: "=", value: "a,b" },
      { field: "spec.nodeName", operator: "!=", value: "n1" },
    ]);
    expect(s.matches((f) => (f === "metadata.name" ? "a,b" : "n2"))).toBe(true);
  });
  it("rejects unsupported fields and garbage", () => {
    expect(() => parseFieldSelector("status.podIP=1", supported)).toThrow("field label not supported: status.podIP");
    expect(() => parseFieldSelector("metadata.name", supported)).toThrow(/can't understand/);
  });
});

describe("strategic merge patch", () => {
  it("honours $setElementOrder, $deleteFromPrimitiveList, $retainKeys and $patch: replace", () => {
    const original = {
      metadata: { finalizers: ["a", "b", "c"] },
      spec: {
        containers: [
          { name: "one", image: "1" },
          { name: "two", image: "2" },
        ],
        strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: 1 } },
        selector: { matchLabels: { x: "1", y: "2" } },
      },
    };
    const patched = applyStrategicMergePatch(original, {
      metadata: { "$deleteFromPrimitiveList/finalizers": ["b"] },
      spec: {
        "$setElementOrder/containers": [{ name: "two" }, { name: "one" }],
        containers: [{ name: "one", image: "1b" }],
        strategy: { $retainKeys: ["type"], type: "Recreate" },
        selector: { $patch: "replace", matchLabels: { z: "3" } },
      },
    });
    expect(patched).toEqual({
      metadata: { finalizers: ["a", "c"] },
      spec: {
        containers: [
          { name: "two", image: "2" },
          { name: "one", image: "1b" },
        ],
        strategy: { type: "Recreate" },
        selector: { matchLabels: { z: "3" } },
      },
    });
  });

  it("merges service ports by port and container ports by containerPort", () => {
    const svc = applyStrategicMergePatch({ spec: { ports: [{ port: 80, name: "http" }] } }, { spec: { ports: [{ port: 443, name: "https" }] } });
    expect(svc["spec"]).toEqual({ ports: [{ port: 80, name: "http" }, { port: 443, name: "https" }] });
    const pod = applyStrategicMergePatch(
      { spec: { containers: [{ name: "a", ports: [{ containerPort: 80 }] }] } },
      { spec: { containers: [{ name: "a", ports: [{ containerPort: 80, name: "web" }] }] } },
    );
    expect(pod["spec"]).toEqual({ containers: [{ name: "a", ports: [{ containerPort: 80, name: "web" }] }] });
  });

  it("JSON merge patch replaces lists and deletes nulls", () => {
    expect(applyMergePatch({ a: [1, 2], b: { c: 1, d: 2 } }, { a: [3], b: { c: null } })).toEqual({ a: [3], b: { d: 2 } });
  });
});

describe("structural schema", () => {
  const schema: JsonSchemaProps = {
    type: "object",
    properties: {
      spec: {
        type: "object",
        required: ["name"],
        properties: {
          name: { type: "string", maxLength: 5 },
          tags: { type: "object", additionalProperties: { type: "string" } },
          free: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
          items: { type: "array", items: { type: "object", properties: { a: { type: "integer", minimum: 1 } } } },
          port: { "x-kubernetes-int-or-string": true },
          mode: { type: "string", default: "auto" },
        },
      },
    },
  };

  it("prunes nested unknown fields but keeps maps, preserved subtrees and ObjectMeta", () => {
    const obj: Record<string, unknown> = {
      apiVersion: "x/v1",
      kind: "X",
      metadata: { name: "n", labels: { a: "b" }, bogus: 1 },
      spec: { name: "n", tags: { any: "v" }, free: { deep: { x: 1 } }, items: [{ a: 1, b: 2 }], port: "http", junk: true },
      status: { gone: true },
    };
    expect(pruneObject(obj, schema).sort()).toEqual(["metadata.bogus", "spec.items[0].b", "spec.junk", "status"]);
    expect(obj).toEqual({
      apiVersion: "x/v1",
      kind: "X",
      metadata: { name: "n", labels: { a: "b" } },
      spec: { name: "n", tags: { any: "v" }, free: { deep: { x: 1 } }, items: [{ a: 1 }], port: "http" },
    });
    applyDefaults(obj, schema);
    expect((obj["spec"] as Record<string, unknown>)["mode"]).toBe("auto");
  });

  it("reports type, required, bounds and int-or-string errors", () => {
    const errors: FieldError[] = [];
    validateValue({ spec: { name: "toolong", items: [{ a: 0 }], port: 1.5, tags: { k: 1 } } }, schema, "", errors);
    expect(errors.map((e) => [e.type, e.field])).toEqual([
      ["TooLong", "spec.name"],
      ["Invalid", "spec.items[0].a"],
      ["TypeInvalid", "spec.port"],
      ["TypeInvalid", "spec.tags.k"],
    ]);
    const missing: FieldError[] = [];
    validateValue({ spec: {} }, schema, "", missing);
    expect(missing).toEqual([{ type: "Required", field: "spec.name" }]);
  });
});

describe("ages", () => {
  it("formats like kubectl's AGE column", () => {
    expect([5_000, 150_000, 600_000, 3 * 3600_000 + 60_000, 30 * 3600_000, 3 * 86400_000 + 3600_000, 400 * 86400_000].map(humanDuration)).toEqual([
      "5s",
      "2m30s",
      "10m",
      "3h1m",
      "30h",
      "3d1h",
      "400d",
    ]);
  });
});
