/**
 * Server-side printing: the meta.k8s.io/v1 `Table` kubectl asks for (`Accept: application/json;as=Table;...`).
 * Columns are Name, the kubectl columns of the common built-in kinds, and Age; for custom resources Name plus the
 * CRD's additionalPrinterColumns.
 */
import type { KubeObject, PrinterColumn, ResourceDef } from "./resources";
import { metaOf, storageKey } from "./resources";
import { BUILTIN_COLUMNS, BUILTIN_FULL_COLUMNS } from "./builtin-columns";

type Json = Record<string, unknown>;

export function wantsTable(accept: string | undefined): boolean {
  if (!accept) return false;
  const first = accept.split(",")[0] ?? "";
  return /(^|;)\s*as=Table/.test(first) && /(^|;)\s*g=meta\.k8s\.io/.test(first);
}

/** apimachinery's duration.HumanDuration, as in kubectl's AGE column. */
export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  if (h < 24 * 8) return h % 24 === 0 ? `${Math.floor(h / 24)}d` : `${Math.floor(h / 24)}d${h % 24}h`;
  if (h < 24 * 365 * 2) return `${Math.floor(h / 24)}d`;
  const y = Math.floor(h / (24 * 365));
  return y < 8 ? `${y}y${Math.floor((h % (24 * 365)) / 24)}d` : `${y}y`;
}

/** Evaluates the simple JSONPath of printer columns: `.spec.field`, `.status.list[0].x`. */
function evalPath(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const part of path.replace(/^\{?\.?/, "").replace(/\}$/, "").split(".")) {
    if (part === "") continue;
    const m = /^([^[\]]*)((\[\d+\])*)$/.exec(part);
    if (!m) return undefined;
    if (m[1]) cur = cur && typeof cur === "object" ? (cur as Json)[m[1]] : undefined;
    for (const idx of (m[2] ?? "").match(/\d+/g) ?? []) cur = Array.isArray(cur) ? cur[Number(idx)] : undefined;
  }
  return cur;
}

function cellValue(col: PrinterColumn, obj: KubeObject, nowMs: number): unknown {
  const v = col.compute ? col.compute(obj) : evalPath(obj, col.jsonPath);
  if (v === undefined || v === null) return null;
  if (col.type === "date" && typeof v === "string") return humanDuration(nowMs - Date.parse(v));
  if (typeof v === "object") return JSON.stringify(v);
  return v;
}

export function toTable(def: ResourceDef, objects: KubeObject[], listMetadata: Json, nowMs: number, includeObject: string | null): Json {
  const full = def.schema ? undefined : BUILTIN_FULL_COLUMNS[storageKey(def)];
  if (full) return tableOf(full, objects, listMetadata, nowMs, includeObject);
  const age: PrinterColumn = { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp", description: "CreationTimestamp is a timestamp representing the server time when this object was created." };
  const builtin = def.schema ? undefined : BUILTIN_COLUMNS[storageKey(def)];
  const columns: PrinterColumn[] = def.printerColumns && def.printerColumns.length > 0 ? def.printerColumns : builtin
        ? [...builtin.filter((c) => !c.priority), age, ...builtin.filter((c) => c.priority)]
        : [age];
  const columnDefinitions = [
    { name: "Name", type: "string", format: "name", description: "Name must be unique within a namespace.", priority: 0 },
    ...columns.map((c) => ({ name: c.name, type: c.type, format: c.format ?? "", description: c.description ?? "", priority: c.priority ?? 0 })),
  ];
  return { ...tableOf(columns, objects, listMetadata, nowMs, includeObject, true), columnDefinitions };
}

/** Rows of `columns` (after the object's name when `withName`). */
function tableOf(columns: PrinterColumn[], objects: KubeObject[], listMetadata: Json, nowMs: number, includeObject: string | null, withName = false): Json {
  const columnDefinitions = columns.map((c) => ({ name: c.name, type: c.type, format: c.format ?? "", description: c.description ?? "", priority: c.priority ?? 0 }));
  const rows = objects.map((o) => {
    const cells = columns.map((c) => cellValue(c, o, nowMs));
    const row: Json = { cells: withName ? [metaOf(o).name ?? "", ...cells] : cells };
    if (includeObject === "Object") row["object"] = o;
    else if (includeObject !== "None") row["object"] = { kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata: metaOf(o) };
    return row;
  });
  return { kind: "Table", apiVersion: "meta.k8s.io/v1", metadata: listMetadata, columnDefinitions, rows };
}
