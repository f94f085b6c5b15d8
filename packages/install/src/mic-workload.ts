import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IPodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { INSTALL_NAMES, type InstallOptions } from "./install-options";
import { commonLabels, podLabels, podMetadata, podScheduling, selectorLabels } from "./labels";
import { httpProbes } from "./probes";

export function micImage(o: Pick<InstallOptions, "imageRegistry" | "tag"> & { mic?: Pick<InstallOptions["mic"], "imageName" | "tag"> }): string {
  return `${o.imageRegistry}/${o.mic?.imageName ?? "podidentity-mic"}:${o.mic?.tag ?? o.tag}`;
}

/** MIC's command line; flag names are MIC's (packages/mic/src/main.ts), which keep v1.8's. */
export function micArgs(o: InstallOptions): string[] {
  return [
    `--cloudconfig=${INSTALL_NAMES.cloudConfigDir}/${INSTALL_NAMES.cloudConfigKey}`,
    `--force-namespaced=${o.forceNamespaced}`,
    "--leader-election-namespace=$(MIC_POD_NAMESPACE)",
    `--leader-election-name=${o.mic.leaseName}`,
    "--leader-election-instance=$(POD_NAME)",
    `--http-probe-port=${o.mic.httpProbePort}`,
    `--prometheus-port=${o.mic.prometheusPort}`,
    ...(o.immutableUserMsis.length > 0 ? [`--immutable-user-msis=${o.immutableUserMsis.join(",")}`] : []),
    ...(o.mic.leaderElectionDuration !== undefined ? [`--leader-election-duration=${o.mic.leaderElectionDuration}`] : []),
    ...(o.mic.identityAssignmentReconcileInterval !== undefined ? [`--identity-assignment-reconcile-interval=${o.mic.identityAssignmentReconcileInterval}`] : []),
    ...(o.mic.logVerbosity !== undefined ? [`-v=${o.mic.logVerbosity}`] : []),
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
      replicas: o.mic.replicas,
      revisionHistoryLimit: 5,
      selector: { matchLabels: selectorLabels("mic") },
      strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1, maxSurge: 1 } },
      template: {
        metadata: podMetadata("mic", o.mic),
        spec: {
          serviceAccountName: INSTALL_NAMES.mic,
          ...podScheduling(o, o.mic),
          ...(o.mic.topologySpreadConstraints.length > 0 && { topologySpreadConstraints: [...o.mic.topologySpreadConstraints] }),
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 65532,
            runAsGroup: 65532,
            fsGroup: 65532,
            seccompProfile: { type: "RuntimeDefault" },
          },
          containers: [
            {
              name: "mic",
              image: micImage(o),
              imagePullPolicy: o.imagePullPolicy,
              args: micArgs(o),
              env: [
                { name: "MIC_POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
                { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
              ],
              ports: [
                { name: "http-probe", containerPort: o.mic.httpProbePort, protocol: "TCP" },
                { name: "metrics", containerPort: o.mic.prometheusPort, protocol: "TCP" },
              ],
              ...httpProbes(),
              resources: o.mic.resources,
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
    spec: { ...o.mic.podDisruptionBudget, selector: { matchLabels: selectorLabels("mic") } },
  };
}
