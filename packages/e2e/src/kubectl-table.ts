/**
 * Renders the API server's Table (the form `kubectl get` asks for) the way kubectl prints it: upper-case headers,
 * columns padded to their widest cell plus three spaces, dates as ages (`12s`, `3m4s`).
 */
import type { KubeClient, KubeObject } from "@podidentity/kube";

/** The API server's Table (`meta.k8s.io/v1`), what `kubectl get` prints. */
export interface KubeTable {
  columnDefinitions: { name: string; type: string; format?: string; priority?: number }[];
  rows: { cells: unknown[]; object?: KubeObject }[];
}

/** `kubectl get <collection>`: the server-side Table of a collection. */
export function getTable(client: KubeClient, collectionPath: string): Promise<KubeTable> {
  return client.request<KubeTable>("GET", collectionPath, { headers: { accept: "application/json;as=Table;v=v1;g=meta.k8s.io" } });
}

/** kubectl's short human duration (`k8s.io/apimachinery/pkg/util/duration.HumanDuration`, first two ranges). */
export function humanAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  return `${Math.floor(m / 60)}h`;
}

export function renderTable(table: KubeTable, options: { allNamespaces?: boolean; now?: number; wide?: boolean } = {}): string[] {
  const now = options.now ?? Date.now();
  const columns = table.columnDefinitions.map((c, i) => ({ ...c, i })).filter((c) => options.wide || !c.priority);
  const header = [...(options.allNamespaces ? ["NAMESPACE"] : []), ...columns.map((c) => c.name.toUpperCase())];
  const rows = table.rows.map((row) => [
    ...(options.allNamespaces ? [String(row.object?.metadata?.namespace ?? "")] : []),
    ...columns.map((c) => {
      const cell = row.cells[c.i];
      // the server may send a timestamp (kubectl turns it into an age) or the age itself
      if (c.type === "date" && typeof cell === "string" && Number.isFinite(Date.parse(cell))) return humanAge(now - Date.parse(cell));
      return cell === undefined || cell === null ? "<none>" : String(cell);
    }),
  ]);
  if (rows.length === 0) return ["No resources found"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]! + 3))).join("");
  return [line(header), ...rows.map(line)];
}
