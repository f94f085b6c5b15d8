import { describe, expect, it } from "vitest";
import { canonicalQuantity } from "../../src/kube/quantity";
import { api, startServer } from "./helpers/api";

describe("canonicalQuantity (resource.Quantity's canonical form)", () => {
  it("gives Kubernetes's documented examples (apimachinery's Quantity doc and the API reference)", () => {
    // "1.5 will be serialized as "1500m"" and "1.5Gi will be serialized as "1536Mi""
    expect(canonicalQuantity("1.5")).toBe("1500m");
    expect(canonicalQuantity("1.5Gi")).toBe("1536Mi");
    // the suffix is as large as possible without losing precision
    expect(canonicalQuantity("1024Mi")).toBe("1Gi");
    expect(canonicalQuantity("1000m")).toBe("1");
    expect(canonicalQuantity("1000")).toBe("1k");
    expect(canonicalQuantity("0.1")).toBe("100m");
    expect(canonicalQuantity("100m")).toBe("100m");
    expect(canonicalQuantity("256Mi")).toBe("256Mi");
    expect(canonicalQuantity("1Ki")).toBe("1Ki");
  });

  it("keeps the format, except binary quantities below 1024 or not whole, which become decimal SI", () => {
    expect(canonicalQuantity("0.5Ki")).toBe("512");
    expect(canonicalQuantity("1.5Ki")).toBe("1536");
    expect(canonicalQuantity("2048Ki")).toBe("2Mi");
    expect(canonicalQuantity("1.1Ki")).toBe("1126400m");
    expect(canonicalQuantity("1e3")).toBe("1e3");
    expect(canonicalQuantity("1000e0")).toBe("1e3");
    expect(canonicalQuantity("1.5e3")).toBe("1500");
    expect(canonicalQuantity("12E-3")).toBe("12e-3");
    expect(canonicalQuantity("1M")).toBe("1M");
    expect(canonicalQuantity("1000M")).toBe("1G");
    expect(canonicalQuantity("1E")).toBe("1E");
    expect(canonicalQuantity("1000E")).toBe("1000E");
  });

  it("signs, zero, and precision below a nano-unit (rounded up)", () => {
    expect(canonicalQuantity("+1")).toBe("1");
    expect(canonicalQuantity("-1500m")).toBe("-1500m");
    expect(canonicalQuantity("-1024Mi")).toBe("-1Gi");
    expect(canonicalQuantity("0")).toBe("0");
    expect(canonicalQuantity("0Mi")).toBe("0");
    expect(canonicalQuantity("-0.0")).toBe("0");
    expect(canonicalQuantity(".5")).toBe("500m");
    expect(canonicalQuantity("0.0000000001")).toBe("1n");
    expect(canonicalQuantity("1.0000000001")).toBe("1000000001n");
  });

  it("refuses what is not a quantity", () => {
    for (const bad of ["", "Mi", "1Mb", "1 Gi", "1.2.3", "abc", "1i", "1Ki5"]) expect(() => canonicalQuantity(bad), bad).toThrow(/quantities must match/);
  });
});

describe("the API server stores pod quantities in canonical form, as kube-apiserver does", () => {
  it("a Deployment's template and a Pod come back canonical; a bad quantity is a 400", async () => {
    const server = await startServer();
    try {
      const container = { name: "app", image: "app:1", resources: { requests: { cpu: "0.1", memory: "256Mi" }, limits: { cpu: 1, memory: "1024Mi" } } };
      const deployment = await api(server, "POST", "/apis/apps/v1/namespaces/default/deployments", {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "web" },
        spec: { selector: { matchLabels: { app: "web" } }, template: { metadata: { labels: { app: "web" } }, spec: { containers: [container], volumes: [{ name: "tmp", emptyDir: { sizeLimit: "65536Ki" } }] } } },
      });
      expect(deployment.status).toBe(201);
      const tpl = deployment.body.spec.template.spec;
      expect(tpl.containers[0].resources).toEqual({ requests: { cpu: "100m", memory: "256Mi" }, limits: { cpu: "1", memory: "1Gi" } });
      expect(tpl.volumes[0].emptyDir.sizeLimit).toBe("64Mi");
      const pod = await api(server, "POST", "/api/v1/namespaces/default/pods", { apiVersion: "v1", kind: "Pod", metadata: { name: "p" }, spec: { containers: [container] } });
      expect(pod.body.spec.containers[0].resources.limits.memory).toBe("1Gi");
      const bad = await api(server, "POST", "/api/v1/namespaces/default/pods", { apiVersion: "v1", kind: "Pod", metadata: { name: "q" }, spec: { containers: [{ ...container, resources: { limits: { memory: "1GB" } } }] } });
      // The quantity fails kube-apiserver's decoder, before validation: 400, as a real server answers.
      expect(bad.status).toBe(400);
      expect(bad.body.message).toBe(`Pod in version "v1" cannot be handled as a Pod: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'`);
    } finally {
      await server.close();
    }
  });
});
