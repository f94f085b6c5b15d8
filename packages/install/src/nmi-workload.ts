import type { IDaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { INSTALL_NAMES, type InstallOptions } from "./install-options";
import { podLabels, podMetadata, podScheduling, selectorLabels } from "./labels";
import { httpProbes } from "./probes";

export function nmiImage(o: Pick<InstallOptions, "imageRegistry" | "tag"> & { nmi?: Pick<InstallOptions["nmi"], "imageName" | "tag"> }): string {
  return `${o.imageRegistry}/${o.nmi?.imageName ?? "podidentity-nmi"}:${o.nmi?.tag ?? o.tag}`;
}

/** NMI's command line; flag names are NMI's (packages/nmi/src/main.ts), which keep v1.8's. */
export function nmiArgs(o: InstallOptions): string[] {
  return [
    "--node=$(NODE_NAME)",
    `--operation-mode=${o.mode}`,
    `--force-namespaced=${o.forceNamespaced}`,
    `--http-probe-port=${o.nmi.httpProbePort}`,
    `--prometheus-port=${o.nmi.prometheusPort}`,
    // The node's file, mounted at the same path (see the kubelet-config volume).
    `--kubelet-config=${o.nmi.kubeletConfig}`,
    ...(o.startupTaint ? [] : ["--remove-node-taint=false"]),
    ...(o.nmi.allowNetworkPluginKubenet ? ["--allow-network-plugin-kubenet=true"] : []),
    ...(o.nmi.blockInstanceMetadata !== undefined ? [`--block-instance-metadata=${o.nmi.blockInstanceMetadata}`] : []),
    ...(o.nmi.metadataHeaderRequired !== undefined ? [`--metadata-header-required=${o.nmi.metadataHeaderRequired}`] : []),
    ...(o.nmi.ipTablesUpdateIntervalSec !== undefined ? [`--ipt-update-interval-sec=${o.nmi.ipTablesUpdateIntervalSec}`] : []),
    ...(o.nmi.enableConntrackDeletion !== undefined ? [`--enable-conntrack-deletion=${o.nmi.enableConntrackDeletion}`] : []),
    ...(o.nmi.logVerbosity !== undefined ? [`-v=${o.nmi.logVerbosity}`] : []),
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
      updateStrategy: o.nmi.updateStrategy,
      template: {
        metadata: podMetadata("nmi", o.nmi),
        spec: {
          serviceAccountName: INSTALL_NAMES.nmi,
          hostNetwork: true,
          dnsPolicy: "ClusterFirstWithHostNet",
          ...podScheduling(o, o.nmi),
          // On SIGTERM NMI reads this DaemonSet (bounded to 5 s) and removes its iptables rules only when the
          // DaemonSet is gone or no longer targets the node; a restart or rollout keeps them (fail closed).
          terminationGracePeriodSeconds: 30,
          containers: [
            {
              name: "nmi",
              image: nmiImage(o),
              imagePullPolicy: o.imagePullPolicy,
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
                { name: "http-probe", containerPort: o.nmi.httpProbePort, hostPort: o.nmi.httpProbePort, protocol: "TCP" },
                { name: "metrics", containerPort: o.nmi.prometheusPort, hostPort: o.nmi.prometheusPort, protocol: "TCP" },
              ],
              // Ready only once the iptables rules are installed and the informers synced.
              ...httpProbes(),
              resources: o.nmi.resources,
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
                // Only the kubelet flags file NMI checks for kubenet, not the rest of the node's /etc/default.
                { name: "kubelet-config", mountPath: o.nmi.kubeletConfig, readOnly: true },
                { name: "iptables-bin", mountPath: "/run/podidentity" },
              ],
            },
          ],
          volumes: [
            { name: "xtables-lock", hostPath: { path: "/run/xtables.lock", type: "FileOrCreate" } },
            // FileOrCreate, as v1.8: a node without the file gets an empty one, which NMI reads as "not kubenet".
            { name: "kubelet-config", hostPath: { path: o.nmi.kubeletConfig, type: "FileOrCreate" } },
            { name: "iptables-bin", emptyDir: { medium: "Memory", sizeLimit: "1Mi" } },
          ],
        },
      },
    },
  };
}
