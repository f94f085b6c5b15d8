import { seriesKey, type Sample } from "./prometheus-text";

/**
 * What aad-pod-identity v1.8's series must be, computed here from a scrape of podidentity's metrics without
 * PromQL: the independent answer the recording rules (charts/podidentity/files/aadpodidentity-rules.yaml) are
 * checked against by `promtool test rules`.
 */

/** v1.8's bucket bounds (pkg/metrics/metrics.go) that podidentity's histograms also have. */
export const SHARED_LE = {
  nmiOperations: ["0.5", "1", "5", "10", "20", "30", "+Inf"],
  imdsOperations: ["0.01", "0.05", "0.1", "0.5", "1", "5", "10", "+Inf"],
  cloudProviderOperations: ["0.5", "1", "5", "10", "30", "+Inf"],
};

const NMI_ROUTES: Record<string, string> = { token: "/metadata/identity/oauth2/token", "host-token": "/host/token/" };
const UPSTREAM_TARGETS: Record<string, string> = { imds: "adal_token_msi_userassignedid", entra: "adal_token" };
const ARM_OPERATIONS = new Set(["vm_get", "vm_update", "vmss_get", "vmss_update"]);

export interface Expected {
  labels: Record<string, string>;
  value: number;
}

function without(labels: Record<string, string>, ...names: string[]): Record<string, string> {
  const out = { ...labels };
  for (const n of names) delete out[n];
  return out;
}

/** Sums samples per label set (PromQL's `sum without (...)`). */
class Grouped {
  readonly #groups = new Map<string, Expected>();
  add(labels: Record<string, string>, value: number): void {
    const key = seriesKey("", labels);
    const g = this.#groups.get(key);
    if (g) g.value += value;
    else this.#groups.set(key, { labels, value });
  }
  get(labels: Record<string, string>): number | undefined {
    return this.#groups.get(seriesKey("", labels))?.value;
  }
  values(): Expected[] {
    return [...this.#groups.values()];
  }
}

/** Every recorded v1.8 series (name → its series), from one scrape of NMI and MIC (job/instance labels included). */
export function expectedV18Series(samples: readonly Sample[]): Map<string, Expected[]> {
  const out = new Map<string, Expected[]>();
  const of = (name: string): Sample[] => samples.filter((s) => s.name === name);

  for (const part of ["bucket", "sum", "count"]) {
    const g = new Grouped();
    for (const s of of(`podidentity_nmi_request_duration_seconds_${part}`)) {
      const path = NMI_ROUTES[s.labels["route"] ?? ""];
      if (path === undefined || (part === "bucket" && !SHARED_LE.nmiOperations.includes(s.labels["le"]!))) continue;
      g.add({ ...without(s.labels, "route", "status"), operation_type: path, status_code: s.labels["status"]! }, s.value);
    }
    out.set(`aadpodidentity_nmi_operations_duration_seconds_${part}`, g.values());
  }

  const errors = new Grouped();
  for (const s of of("podidentity_nmi_upstream_calls_total")) {
    const op = UPSTREAM_TARGETS[s.labels["target"] ?? ""];
    if (op === undefined || s.labels["outcome"] === "ok") continue;
    errors.add({ ...without(s.labels, "target", "outcome"), operation_type: op }, s.value);
  }
  out.set("aadpodidentity_imds_operations_errors_count", errors.values());
  for (const part of ["bucket", "sum", "count"]) {
    const g = new Grouped();
    for (const s of of(`podidentity_nmi_upstream_duration_seconds_${part}`)) {
      const op = UPSTREAM_TARGETS[s.labels["target"] ?? ""];
      if (op === undefined || (part === "bucket" && !SHARED_LE.imdsOperations.includes(s.labels["le"]!))) continue;
      g.add({ ...without(s.labels, "target"), operation_type: op }, s.value);
    }
    out.set(`aadpodidentity_imds_operations_duration_seconds_${part}`, g.values());
  }

  out.set(
    "aadpodidentity_mic_new_leader_election_count",
    of("podidentity_mic_leader_elections_total").map((s) => ({ labels: s.labels, value: s.value })),
  );

  // Final ARM failures: answers >= 400 less the throttled answers MIC waited out and retried.
  const failed = new Grouped();
  for (const s of of("podidentity_mic_arm_requests_total")) {
    if (!ARM_OPERATIONS.has(s.labels["operation"] ?? "") || Number(s.labels["status"]) < 400) continue;
    failed.add(without(s.labels, "status"), s.value);
  }
  const retried = new Grouped();
  for (const s of of("podidentity_mic_arm_throttled_waits_total")) retried.add(s.labels, s.value);
  out.set(
    "aadpodidentity_cloud_provider_operations_errors_count",
    failed.values().map((f) => ({ labels: { ...without(f.labels, "operation"), operation_type: f.labels["operation"]! }, value: f.value - (retried.get(f.labels) ?? 0) })),
  );
  for (const part of ["bucket", "sum", "count"]) {
    const g = new Grouped();
    for (const s of of(`podidentity_mic_arm_request_duration_seconds_${part}`)) {
      const op = s.labels["operation"] ?? "";
      if (!ARM_OPERATIONS.has(op) || (part === "bucket" && !SHARED_LE.cloudProviderOperations.includes(s.labels["le"]!))) continue;
      g.add({ ...without(s.labels, "operation"), operation_type: op }, s.value);
    }
    out.set(`aadpodidentity_cloud_provider_operations_duration_seconds_${part}`, g.values());
  }
  return out;
}

/** The label names v1.8 put on each series (pkg/metrics/metrics.go), besides the target's job and instance. */
export const V18_LABELS: Record<string, readonly string[]> = {
  aadpodidentity_nmi_operations_duration_seconds_bucket: ["operation_type", "status_code", "namespace", "resource", "le"],
  aadpodidentity_nmi_operations_duration_seconds_sum: ["operation_type", "status_code", "namespace", "resource"],
  aadpodidentity_nmi_operations_duration_seconds_count: ["operation_type", "status_code", "namespace", "resource"],
  aadpodidentity_imds_operations_errors_count: ["operation_type"],
  aadpodidentity_imds_operations_duration_seconds_bucket: ["operation_type", "le"],
  aadpodidentity_imds_operations_duration_seconds_sum: ["operation_type"],
  aadpodidentity_imds_operations_duration_seconds_count: ["operation_type"],
  aadpodidentity_mic_new_leader_election_count: [],
  aadpodidentity_cloud_provider_operations_errors_count: ["operation_type"],
  aadpodidentity_cloud_provider_operations_duration_seconds_bucket: ["operation_type", "le"],
  aadpodidentity_cloud_provider_operations_duration_seconds_sum: ["operation_type"],
  aadpodidentity_cloud_provider_operations_duration_seconds_count: ["operation_type"],
};
