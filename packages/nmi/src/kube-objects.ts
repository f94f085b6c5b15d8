import type { KubeObject } from "@podidentity/kube";

/** The parts of the Kubernetes objects NMI reads (plain JSON from the API server, or a pod as PodCache keeps it). */
export interface Pod extends KubeObject {
  spec?: { nodeName?: string; hostNetwork?: boolean; [key: string]: unknown };
  status?: { phase?: string; podIP?: string; podIPs?: Array<{ ip?: string }>; [key: string]: unknown };
}

export interface Taint {
  key: string;
  value?: string;
  effect: string;
  timeAdded?: string;
}

export interface NodeObject extends KubeObject {
  spec?: { taints?: Taint[]; [key: string]: unknown };
  status?: { addresses?: Array<{ type?: string; address?: string }>; [key: string]: unknown };
}

export interface SecretObject extends KubeObject {
  data?: Record<string, string>;
}
