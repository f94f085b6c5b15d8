import { parse } from "yaml";
// The one copy of the rules: the chart's PrometheusRule template reads the same file with .Files.Get.
import rulesYaml from "../../../charts/podidentity/files/aadpodidentity-rules.yaml";
import type { InstallOptions } from "./install-options";
import { commonLabels } from "./labels";

/**
 * Prometheus recording rules that produce aad-pod-identity v1.8's `aadpodidentity_*` series from podidentity's
 * metrics (docs/metrics.md), as a Prometheus `rule_files:` document.
 */
export const AADPODIDENTITY_RECORDING_RULES_YAML: string = rulesYaml;

export interface RecordingRule {
  record: string;
  expr: string;
}

export interface RuleGroup {
  name: string;
  interval?: string;
  rules: RecordingRule[];
}

/** The Prometheus Operator's PrometheusRule (monitoring.coreos.com/v1), as much of it as render writes. */
export interface PrometheusRule {
  apiVersion: "monitoring.coreos.com/v1";
  kind: "PrometheusRule";
  metadata: { name: string; namespace: string; labels: Record<string, string> };
  spec: { groups: RuleGroup[] };
}

export const PROMETHEUS_RULE_NAME = "podidentity-aadpodidentity-metrics";

/** The recording rules' groups, parsed from the shipped file. */
export function recordingRuleGroups(): RuleGroup[] {
  return (parse(AADPODIDENTITY_RECORDING_RULES_YAML) as { groups: RuleGroup[] }).groups;
}

/** The PrometheusRule render adds with `prometheus.recordingRules.enabled` (the chart's templates/prometheus-rule.yaml). */
export function prometheusRule(o: Pick<InstallOptions, "namespace" | "prometheusRuleLabels">): PrometheusRule {
  return {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "PrometheusRule",
    // The user's labels (the Operator's ruleSelector) never replace podidentity's own.
    metadata: { name: PROMETHEUS_RULE_NAME, namespace: o.namespace, labels: { ...o.prometheusRuleLabels, ...commonLabels() } },
    spec: { groups: recordingRuleGroups() },
  };
}
