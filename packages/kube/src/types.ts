import type { ListMeta, ObjectMeta } from "@podidentity/api";

/** Any Kubernetes object as plain JSON from the API server. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  [key: string]: unknown;
}

/** A list response (`GET /api/v1/pods`); `metadata.continue` is set while more pages follow. */
export interface KubeList<T> {
  apiVersion?: string;
  kind?: string;
  metadata?: ListMeta;
  items: T[];
}

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

/** One line of a watch stream. ERROR events never reach callers: the stream throws a KubeApiError instead. */
export interface WatchEvent<T> {
  type: Exclude<WatchEventType, "ERROR">;
  object: T;
}

/** A Kubernetes Status object, as returned with errors and in watch ERROR events. */
export interface KubeStatus {
  kind?: string;
  apiVersion?: string;
  status?: string;
  code?: number;
  reason?: string;
  message?: string;
  details?: Record<string, unknown>;
}

/** Query parameters; undefined values are left out. */
export type KubeQuery = Record<string, string | number | boolean | undefined>;
