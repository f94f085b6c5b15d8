import { existsSync, readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { AZURE_ASSIGNED_IDENTITY_NAMES } from "@podidentity/api";
import type { IDaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IClusterRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_INSTALL_OPTIONS,
  identitiesFromValues,
  INSTALL_PORTS,
  INSTALL_VERSION,
  InstallOptionsError,
  parseInstallValues,
  renderManifests,
  type InstallManifest,
  type InstallOptions,
} from "../src/index";
import { validateWithModel } from "./helpers/validate-model";

const find = <K extends InstallManifest["kind"]>(ms: InstallManifest[], kind: K, name?: string) =>
  ms.find((m) => m.kind === kind && (name === undefined || m.metadata?.name === name)) as Extract<InstallManifest, { kind: K }> | undefined;

const SP_VALUES = `
rbac:
  allowAccessToSecrets: true
azureIdentities:
  sp:
    namespace: shop
    type: 1
    tenantID: 72f988bf-86f1-41af-91ab-2d7cd011db47
    clientID: 5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b
    clientPassword: { name: sp-secret, namespace: shop }
    binding: { name: sp-binding, selector: sp }
`;

const VARIANTS: [string, Partial<InstallOptions>][] = [
  ["standard (defaults)", {}],
  ["managed", { mode: "managed" }],
  ["standard, own namespace, cross-namespace, immutable MSIs", { namespace: "podidentity", forceNamespaced: false, immutableUserMsis: ["5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"] }],
  ["standard with service-principal identities", { allowAccessToSecrets: true, identities: identitiesFromValues(parseInstallValues(SP_VALUES), "kube-system") }],
];

describe("renderManifests", () => {
  for (const [name, options] of VARIANTS) {
    it(`${name}: every built-in object validates against the Kubernetes OpenAPI schemas (kubernetes-models)`, () => {
      const ms = renderManifests(options);
      const results = ms.map(validateWithModel);
      expect(results.filter((r) => r === "validated").length).toBeGreaterThanOrEqual(4);
      for (const m of ms) expect(m.metadata?.name, m.kind).toBeTruthy();
    });
  }

  it("the validators do fail on a broken object (the check above can fail)", () => {
    const ds = structuredClone(find(renderManifests(), "DaemonSet")!) as unknown as { spec: { template: { spec: { hostNetwork: unknown } } } };
    ds.spec.template.spec.hostNetwork = "yes";
    expect(() => validateWithModel(ds as unknown as InstallManifest)).toThrow();
  });

  it("standard mode: MIC (Deployment, PDB, RBAC, Lease Role) and NMI, plus the MIC and AKS add-on exceptions", () => {
    const kinds = renderManifests().map((m) => `${m.kind}/${m.metadata?.namespace ?? ""}/${m.metadata?.name}`);
    expect(kinds).toEqual([
      "ServiceAccount/kube-system/podidentity-mic",
      "ServiceAccount/kube-system/podidentity-nmi",
      "ClusterRole//podidentity-mic",
      "ClusterRoleBinding//podidentity-mic",
      "Role/kube-system/podidentity-mic-leader-election",
      "RoleBinding/kube-system/podidentity-mic-leader-election",
      "ClusterRole//podidentity-nmi",
      "ClusterRoleBinding//podidentity-nmi",
      "Role/kube-system/podidentity-nmi-daemonset-reader",
      "RoleBinding/kube-system/podidentity-nmi-daemonset-reader",
      "Deployment/kube-system/podidentity-mic",
      "PodDisruptionBudget/kube-system/podidentity-mic",
      "DaemonSet/kube-system/podidentity-nmi",
      "AzurePodIdentityException/kube-system/podidentity-mic",
      "AzurePodIdentityException/kube-system/aks-addon-exception",
    ]);
  });

  it("managed mode: NMI only, no MIC objects, no AzureAssignedIdentity access, namespaced matching", () => {
    const ms = renderManifests({ mode: "managed" });
    expect(ms.filter((m) => m.metadata?.name?.includes("mic"))).toEqual([]);
    const nmiRole = find(ms, "ClusterRole", "podidentity-nmi") as IClusterRole;
    expect(nmiRole.rules!.flatMap((r) => r.resources)).not.toContain(AZURE_ASSIGNED_IDENTITY_NAMES.plural);
    const args = (find(ms, "DaemonSet") as IDaemonSet).spec!.template.spec!.containers[0]!.args;
    expect(args).toContain("--operation-mode=managed");
    expect(args).toContain("--force-namespaced=true");
    expect(find(ms, "AzurePodIdentityException", "aks-addon-exception")?.metadata.namespace).toBe("kube-system");
  });

  it("refuses managed mode without namespaced matching, 'latest' and malformed values, naming the flag", () => {
    expect(() => renderManifests({ mode: "managed", forceNamespaced: false })).toThrow(/--mode managed requires --force-namespaced=true/);
    expect(() => renderManifests({ tag: "latest" })).toThrow(InstallOptionsError);
    expect(() => renderManifests({ namespace: "Kube_System" })).toThrow(/--namespace/);
    expect(() => renderManifests({ imageRegistry: "https://acr.example" })).toThrow(/--image-registry/);
    expect(() => renderManifests({ immutableUserMsis: ["not-a-guid"] })).toThrow(/--immutable-user-msis/);
  });

  it("durations for MIC are what MIC's own flag parser accepts: Go's forms and a bare number of seconds; anything else is refused before MIC would refuse it", () => {
    for (const ok of ["15s", "1h30m", "1.5h", "500ms", "20"]) {
      const args = (find(renderManifests({ mic: { leaderElectionDuration: ok } }), "Deployment") as IDeployment).spec!.template.spec!.containers[0]!.args;
      expect(args).toContain(`--leader-election-duration=${ok}`);
    }
    for (const bad of ["soon", "1d", "-5s", "", "1 h"]) {
      expect(() => renderManifests({ mic: { leaderElectionDuration: bad } }), bad).toThrow(/mic\.leaderElection\.duration must be a duration/);
      expect(() => renderManifests({ mic: { identityAssignmentReconcileInterval: bad } }), bad).toThrow(/mic\.identityAssignmentReconcileInterval must be a duration/);
    }
  });

  it("MIC Deployment: 2 replicas on different nodes, Lease flags, probes on --http-probe-port, non-root read-only, azure.json Secret", () => {
    const d = find(renderManifests({ azureJsonSecret: "my-azure-json", imageRegistry: "myacr.azurecr.io/podidentity", tag: "1.2.3" }), "Deployment") as IDeployment;
    const pod = d.spec!.template.spec!;
    const c = pod.containers[0]!;
    expect(d.spec!.replicas).toBe(2);
    expect(c.image).toBe("myacr.azurecr.io/podidentity/podidentity-mic:1.2.3");
    expect(pod.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution?.[0]?.podAffinityTerm.topologyKey).toBe("kubernetes.io/hostname");
    expect(c.args).toEqual(
      expect.arrayContaining([
        "--cloudconfig=/etc/podidentity/azure.json",
        "--leader-election-namespace=$(MIC_POD_NAMESPACE)",
        "--leader-election-name=aad-pod-identity-mic",
        `--http-probe-port=${INSTALL_PORTS.micHttpProbe}`,
        "--force-namespaced=true",
      ]),
    );
    expect(c.env?.find((e) => e.name === "MIC_POD_NAMESPACE")?.valueFrom?.fieldRef?.fieldPath).toBe("metadata.namespace");
    expect(c.ports?.find((p) => p.name === "http-probe")?.containerPort).toBe(INSTALL_PORTS.micHttpProbe);
    expect(c.livenessProbe?.httpGet).toEqual({ path: "/healthz", port: "http-probe" });
    expect(c.readinessProbe?.httpGet).toEqual({ path: "/readyz", port: "http-probe" });
    expect(c.resources?.requests).toBeDefined();
    expect(c.resources?.limits).toBeDefined();
    expect(pod.securityContext?.runAsNonRoot).toBe(true);
    expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } });
    expect(pod.volumes?.find((v) => v.name === "cloud-config")?.secret?.secretName).toBe("my-azure-json");
    expect(c.volumeMounts?.find((m) => m.name === "cloud-config")).toMatchObject({ mountPath: "/etc/podidentity", readOnly: true });
    expect(c.volumeMounts?.some((m) => m.subPath)).toBe(false);
  });

  it("MIC PodDisruptionBudget keeps one replica during drains", () => {
    const pdb = find(renderManifests(), "PodDisruptionBudget")!;
    expect(pdb.spec).toEqual({ minAvailable: 1, selector: { matchLabels: { "app.kubernetes.io/name": "podidentity-mic" } } });
  });

  it("NMI DaemonSet: hostNetwork, ClusterFirstWithHostNet, every toleration, system-node-critical, xtables lock, NET_ADMIN+NET_RAW only", () => {
    const ds = find(renderManifests(), "DaemonSet") as IDaemonSet;
    const pod = ds.spec!.template.spec!;
    const c = pod.containers[0]!;
    expect(pod.hostNetwork).toBe(true);
    expect(pod.dnsPolicy).toBe("ClusterFirstWithHostNet");
    expect(pod.priorityClassName).toBe("system-node-critical");
    expect(pod.tolerations).toEqual([{ operator: "Exists" }]);
    expect(c.securityContext?.privileged).toBe(false);
    expect(c.securityContext?.capabilities).toEqual({ drop: ["ALL"], add: ["NET_ADMIN", "NET_RAW"] });
    expect(c.securityContext?.allowPrivilegeEscalation).toBe(false);
    expect(c.args).toContain("--node=$(NODE_NAME)");
    expect(c.env).toContainEqual({ name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } });
    // NMI's own pod, through which it finds this DaemonSet on SIGTERM (keep or remove its iptables rules).
    expect(c.env).toContainEqual({ name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } });
    expect(c.env).toContainEqual({ name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } });
    expect(pod.volumes).toContainEqual({ name: "xtables-lock", hostPath: { path: "/run/xtables.lock", type: "FileOrCreate" } });
    expect(c.volumeMounts).toContainEqual({ name: "xtables-lock", mountPath: "/run/xtables.lock" });
    expect(c.livenessProbe?.httpGet?.path).toBe("/healthz");
    expect(c.readinessProbe?.httpGet?.path).toBe("/readyz");
    expect(c.ports?.find((p) => p.name === "http-probe")?.containerPort).toBe(INSTALL_PORTS.nmiHttpProbe);
  });

  it("renders values identities with canonical keys next to the install, in their own namespace", () => {
    const values = parseInstallValues(`
azureIdentities:
  kv-reader:
    namespace: shop
    type: 0
    ResourceID: /subscriptions/0000/resourcegroups/shop/providers/Microsoft.ManagedIdentity/userAssignedIdentities/kv-reader
    ClientID: 5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b
    binding:
      name: kv-reader-binding
      Selector: web
`);
    const ms = renderManifests({ identities: identitiesFromValues(values, "kube-system") });
    expect(find(ms, "AzureIdentity")).toMatchObject({ metadata: { name: "kv-reader", namespace: "shop" }, spec: { type: 0, clientID: "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b" } });
    expect(find(ms, "AzureIdentityBinding")).toMatchObject({ metadata: { name: "kv-reader-binding", namespace: "shop" }, spec: { azureIdentity: "kv-reader", selector: "web" } });
  });

  it("the default tag is this package's version", () => {
    const pkg = JSON.parse(readFileSync(resolve(import.meta.dirname, "../package.json"), "utf8")) as { version: string };
    expect(INSTALL_VERSION).toBe(pkg.version);
    expect(DEFAULT_INSTALL_OPTIONS.tag).toBe(pkg.version);
  });
});

/**
 * `--flag` names the commander program of another package declares, read from its src/ (main.ts, or wherever
 * main.ts moved the program, e.g. cli-options.ts). Undefined when that package has no main.ts (the test fails).
 */
function declaredFlags(pkg: "mic" | "nmi"): Set<string> | undefined {
  const src = resolve(import.meta.dirname, `../../${pkg}/src`);
  if (!existsSync(resolve(src, "main.ts"))) return undefined;
  const files = readdirSync(src, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));
  const text = files.map((f) => readFileSync(resolve(src, f), "utf8")).join("\n");
  return new Set([...text.matchAll(/(?:\.option|new Option)\(\s*"(--[A-Za-z][\w-]*)/g)].map((m) => m[1]!));
}

describe("flags match MIC's and NMI's command lines", () => {
  for (const pkg of ["mic", "nmi"] as const) {
    const flags = declaredFlags(pkg);
    it(`every flag the ${pkg.toUpperCase()} container gets is declared in packages/${pkg}/src/main.ts`, () => {
      expect(flags, `packages/${pkg}/src/main.ts is missing`).toBeDefined();
      const ms = renderManifests({ immutableUserMsis: ["5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"] });
      const workload = pkg === "mic" ? find(ms, "Deployment") : find(ms, "DaemonSet");
      const args = (workload as IDeployment).spec!.template.spec!.containers[0]!.args ?? [];
      expect(args.length).toBeGreaterThan(3);
      for (const arg of args) expect([...flags!], arg).toContain(arg.split("=")[0]);
    });
  }
});
