import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IPodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { INSTALL_NAMES, INSTALL_PORTS, type InstallOptions } from "./install-options";
import { commonLabels, podLabels, selectorLabels } from "./labels";
import { httpProbes } from "./probes";

export function micImage(o: Pick<InstallOptions, "imageRegistry" | "tag">): string {
  return `${o.imageRegistry}/podidentity-mic:${o.tag}`;
}

/** MIC's command line; flag names are MIC's (packages/mic/src/main.ts), which keep v1.8's. */
export function micArgs(o: InstallOptions): string[] {
  return [
    `--cloudconfig=${INSTALL_NAMES.cloudConfigDir}/${INSTALL_NAMES.cloudConfigKey}`,
    `--force-namespaced=${o.forceNamespaced}`,
    "--leader-election-namespace=$(MIC_POD_NAMESPACE)",
    `--leader-election-name=${INSTALL_NAMES.leaseName}`,
    "--leader-election-instance=$(POD_NAME)",
    `--http-probe-port=${INSTALL_PORTS.micHttpProbe}`,
    `--prometheus-port=${INSTALL_PORTS.micPrometheus}`,
    ...(o.immutableUserMsis.length > 0 ? [`--immutable-user-msis=${o.immutableUserMsis.join(",")}`] : []),
  ];
}

/**
 * MIC: two replicas on different nodes, one leading through a Lease, the other ready to take over (both report
 * ready once their informers synced, so a standby never blocks a drain). Non-root, read-only root filesystem,
 * no capabilities; azure.json comes from a Secret mounted as a directory, so an edited Secret reaches the file
 * (a subPath mount would never update).
 */
export function micDeployment(o: InstallOptions): IDeployment {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: INSTALL_NAMES.mic, namespace: o.namespace, labels: podLabels("mic") },
    spec: {
      replicas: 2,
      revisionHistoryLimit: 5,
      selector: { matchLabels: selectorLabels("mic") },
      strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1, maxSurge: 1 } },
      template: {
        metadata: { labels: podLabels("mic") },
        spec: {
          serviceAccountName: INSTALL_NAMES.mic,
          nodeSelector: { "kubernetes.io/os": "linux" },
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 65532,
            runAsGroup: 65532,
            fsGroup: 65532,
            seccompProfile: { type: "RuntimeDefault" },
          },
          affinity: {
            podAntiAffinity: {
              preferredDuringSchedulingIgnoredDuringExecution: [
                {
                  weight: 100,
                  podAffinityTerm: { topologyKey: "kubernetes.io/hostname", labelSelector: { matchLabels: selectorLabels("mic") } },
                },
              ],
            },
          },
          containers: [
            {
              name: "mic",
              image: micImage(o),
              imagePullPolicy: "IfNotPresent",
              args: micArgs(o),
              env: [
                { name: "MIC_POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
                { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
              ],
              ports: [
                { name: "http-probe", containerPort: INSTALL_PORTS.micHttpProbe, protocol: "TCP" },
                { name: "metrics", containerPort: INSTALL_PORTS.micPrometheus, protocol: "TCP" },
              ],
              ...httpProbes(),
              // v1.8's chart values; MIC holds informer caches of pods, nodes and the custom resources.
              resources: { requests: { cpu: "100m", memory: "256Mi" }, limits: { cpu: "200m", memory: "1Gi" } },
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                runAsNonRoot: true,
                capabilities: { drop: ["ALL"] },
              },
              volumeMounts: [
                { name: "cloud-config", mountPath: INSTALL_NAMES.cloudConfigDir, readOnly: true },
                { name: "tmp", mountPath: "/tmp" },
              ],
            },
          ],
          volumes: [
            { name: "cloud-config", secret: { secretName: o.azureJsonSecret, defaultMode: 0o440 } },
            { name: "tmp", emptyDir: { sizeLimit: "64Mi" } },
          ],
        },
      },
    },
  };
}

/** At most one MIC replica is evicted at a time, so a drain never leaves the cluster without one. */
export function micPodDisruptionBudget(o: InstallOptions): IPodDisruptionBudget {
  return {
    apiVersion: "policy/v1",
    kind: "PodDisruptionBudget",
    metadata: { name: INSTALL_NAMES.mic, namespace: o.namespace, labels: commonLabels("mic") },
    spec: { minAvailable: 1, selector: { matchLabels: selectorLabels("mic") } },
  };
}
