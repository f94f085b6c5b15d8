import type { IDaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { INSTALL_NAMES, INSTALL_PORTS, type InstallOptions } from "./install-options";
import { podLabels, selectorLabels } from "./labels";
import { httpProbes } from "./probes";

export function nmiImage(o: Pick<InstallOptions, "imageRegistry" | "tag">): string {
  return `${o.imageRegistry}/podidentity-nmi:${o.tag}`;
}

/** Where the node's /etc/default is mounted; NMI reads `kubelet` there to refuse kubenet (v1.8's check). */
export const HOST_ETC_DEFAULT = "/host/etc/default";

/** NMI's command line; flag names are NMI's (packages/nmi/src/main.ts), which keep v1.8's. */
export function nmiArgs(o: InstallOptions): string[] {
  return [
    "--node=$(NODE_NAME)",
    `--operation-mode=${o.mode}`,
    `--force-namespaced=${o.forceNamespaced}`,
    `--http-probe-port=${INSTALL_PORTS.nmiHttpProbe}`,
    `--prometheus-port=${INSTALL_PORTS.nmiPrometheus}`,
    `--kubelet-config=${HOST_ETC_DEFAULT}/kubelet`,
  ];
}

/**
 * NMI: one per Linux node, in the node's network namespace (its iptables rules and its 0.0.0.0:2579 listener,
 * which those rules guard, are the node's; no route_localnet needed, so /proc/sys stays read-only), scheduled before anything else (system-node-critical, tolerates every taint — including the
 * startup taint it removes once interception is live). Root for iptables, but not privileged: every capability
 * dropped except NET_ADMIN (nat rules) and NET_RAW (raw sockets iptables opens), read-only root filesystem;
 * the image's entrypoint links the node's iptables backend (nft or legacy) into an emptyDir on PATH.
 */
export function nmiDaemonSet(o: InstallOptions): IDaemonSet {
  return {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name: INSTALL_NAMES.nmi, namespace: o.namespace, labels: podLabels("nmi") },
    spec: {
      revisionHistoryLimit: 5,
      selector: { matchLabels: selectorLabels("nmi") },
      updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } },
      template: {
        metadata: { labels: podLabels("nmi") },
        spec: {
          serviceAccountName: INSTALL_NAMES.nmi,
          hostNetwork: true,
          dnsPolicy: "ClusterFirstWithHostNet",
          priorityClassName: "system-node-critical",
          nodeSelector: { "kubernetes.io/os": "linux" },
          tolerations: [{ operator: "Exists" }],
          // On SIGTERM NMI reads this DaemonSet (bounded to 5 s) and removes its iptables rules only when the
          // DaemonSet is gone or no longer targets the node; a restart or rollout keeps them (fail closed).
          terminationGracePeriodSeconds: 30,
          containers: [
            {
              name: "nmi",
              image: nmiImage(o),
              imagePullPolicy: "IfNotPresent",
              args: nmiArgs(o),
              env: [
                { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
                // The node's address, where pods' metadata traffic is DNATed to (v1.8's manifests set HOST_IP too).
                { name: "HOST_IP", valueFrom: { fieldRef: { fieldPath: "status.hostIP" } } },
                // NMI's own pod: its ownerReference names the DaemonSet NMI reads on SIGTERM.
                { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
                { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
              ],
              ports: [
                { name: "http-probe", containerPort: INSTALL_PORTS.nmiHttpProbe, hostPort: INSTALL_PORTS.nmiHttpProbe, protocol: "TCP" },
                { name: "metrics", containerPort: INSTALL_PORTS.nmiPrometheus, hostPort: INSTALL_PORTS.nmiPrometheus, protocol: "TCP" },
              ],
              // Ready only once the iptables rules are installed and the informers synced.
              ...httpProbes(),
              resources: { requests: { cpu: "100m", memory: "256Mi" }, limits: { cpu: "200m", memory: "512Mi" } },
              securityContext: {
                privileged: false,
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                runAsUser: 0,
                runAsNonRoot: false,
                capabilities: { drop: ["ALL"], add: ["NET_ADMIN", "NET_RAW"] },
                seccompProfile: { type: "RuntimeDefault" },
              },
              volumeMounts: [
                // Shared with kube-proxy and the CNI, so concurrent iptables writers take turns.
                { name: "xtables-lock", mountPath: "/run/xtables.lock" },
                { name: "host-etc-default", mountPath: HOST_ETC_DEFAULT, readOnly: true },
                { name: "iptables-bin", mountPath: "/run/podidentity" },
              ],
            },
          ],
          volumes: [
            { name: "xtables-lock", hostPath: { path: "/run/xtables.lock", type: "FileOrCreate" } },
            { name: "host-etc-default", hostPath: { path: "/etc/default", type: "Directory" } },
            { name: "iptables-bin", emptyDir: { medium: "Memory", sizeLimit: "1Mi" } },
          ],
        },
      },
    },
  };
}
