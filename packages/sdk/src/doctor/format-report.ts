import type { DoctorReport } from "./run-doctor";

function duration(seconds: number): string {
  if (seconds < 0) return "expired";
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return h > 0 ? `${h} h ${m} min left` : `${m} min ${seconds % 60} s left`;
}

/** The human-readable report: one fact per line, the failure in one line with its likely fix. */
export function formatReport(report: DoctorReport): string[] {
  const lines = ["podidentity doctor"];
  const row = (label: string, value: string): void => void lines.push(`  ${label.padEnd(11)} ${value}`);
  if (report.mode !== undefined) row("mode", report.mode === "imds" ? "IMDS endpoint (pod identity)" : "workload identity");
  if (report.target !== undefined) row(report.mode === "imds" ? "endpoint" : "target", report.target);
  const probe = report.probe;
  if (probe !== undefined) {
    row(
      "reachable",
      probe.reachable
        ? `yes, ${probe.kind === "nmi" ? `NMI ${probe.nmiVersion}` : "plain IMDS (no x-podidentity-nmi header)"}, HTTP ${probe.statusCode} in ${probe.latencyMs} ms`
        : `no (${probe.error} after ${probe.latencyMs} ms)`,
    );
  }
  row("identity", report.identity);
  row("resource", report.resource);
  if (report.token !== undefined) {
    row("token", `obtained in ${report.token.obtainedInMs} ms (not shown)`);
    const claims = report.token.claims;
    if (claims === undefined) {
      row("claims", "the token is not a JWT; nothing to decode");
    } else {
      for (const name of ["aud", "iss", "tid", "oid", "appid", "xms_mirid"] as const) {
        if (claims[name] !== undefined) row(`  ${name}`, claims[name]);
      }
    }
    row("expires", `${report.token.expiresOn} (${duration(report.token.timeLeftSeconds)})`);
    lines.push("OK: a token was obtained");
  }
  if (report.failure !== undefined) {
    const f = report.failure;
    const detail = [f.statusCode, f.reason].filter((x) => x !== undefined).join(" ");
    lines.push(`FAILED ${f.code}${detail ? ` (${detail})` : ""}: ${f.fix}`);
    lines.push(`  ${f.message}`);
    if (f.command !== undefined) lines.push(`  run: ${f.command}`);
  }
  return lines;
}
