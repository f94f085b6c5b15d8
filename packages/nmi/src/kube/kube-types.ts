/** The parts of Kubernetes objects NMI reads (plain JSON from the API server). */
export interface KubeObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: string;
  [key: string]: unknown;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: KubeObjectMeta;
  [key: string]: unknown;
}

export interface KubeList<T extends KubeObject = KubeObject> {
  metadata?: { resourceVersion?: string; continue?: string };
  items: T[];
}

export interface Pod extends KubeObject {
  metadata?: KubeObjectMeta;
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

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
