import { CliValueError, parseBool, parseInteger } from "./cli-values";

/**
 * aad-pod-identity v1.8's flags that podidentity has no flag of the same name for: klog's (both programs call
 * `klog.InitFlags`), `--log-format` and `--custom-user-agent` (both), NMI's and MIC's own. v1.8's manifests and
 * chart 4.1.x pass them, so a program that refused them would crash-loop after a migration. Each is taken out of the
 * arguments before parsing and either mapped to podidentity's setting or ignored, with a notice that says which
 * and why, for the program to log once at startup. The flags both programs share with v1.8 under the same name
 * (`--node`, `--forceNamespaced`, `--leader-election-name`, …) are ordinary flags of the programs, not listed here.
 */

export type LegacyComponent = "nmi" | "mic";

interface LegacyFlag {
  /** Go's flags: a boolean takes `=value` or nothing (never the next argument); any other takes `=value` or the next argument. */
  kind: "bool" | "value";
  components: readonly LegacyComponent[];
  /** Why podidentity does not need it: shown in the startup warning. */
  ignoredBecause?: string;
}

const BOTH = ["nmi", "mic"] as const;
const KLOG_OUTPUT = "podidentity logs JSON lines to stdout (level: --log-level), so klog's output settings have nothing to set";
const TYPE_UPGRADE = "v1.8's one-time upgrade of pre-1.6 custom resources has nothing to upgrade in podidentity";
const ARM_RETRY = "MIC retries a failed VM/VMSS update with backoff until it succeeds (permanent failures are reported on the AzureAssignedIdentity)";

const FLAGS: Record<string, LegacyFlag> = {
  // klog.InitFlags (k8s.io/klog/v2), both programs. `v` is mapped (see takeLegacyFlags).
  v: { kind: "value", components: BOTH },
  logtostderr: { kind: "bool", components: BOTH, ignoredBecause: KLOG_OUTPUT },
  alsologtostderr: { kind: "bool", components: BOTH, ignoredBecause: KLOG_OUTPUT },
  add_dir_header: { kind: "bool", components: BOTH, ignoredBecause: KLOG_OUTPUT },
  skip_headers: { kind: "bool", components: BOTH, ignoredBecause: KLOG_OUTPUT },
  skip_log_headers: { kind: "bool", components: BOTH, ignoredBecause: KLOG_OUTPUT },
  one_output: { kind: "bool", components: BOTH, ignoredBecause: KLOG_OUTPUT },
  log_dir: { kind: "value", components: BOTH, ignoredBecause: KLOG_OUTPUT },
  log_file: { kind: "value", components: BOTH, ignoredBecause: KLOG_OUTPUT },
  log_file_max_size: { kind: "value", components: BOTH, ignoredBecause: KLOG_OUTPUT },
  stderrthreshold: { kind: "value", components: BOTH, ignoredBecause: KLOG_OUTPUT },
  vmodule: { kind: "value", components: BOTH, ignoredBecause: KLOG_OUTPUT },
  log_backtrace_at: { kind: "value", components: BOTH, ignoredBecause: KLOG_OUTPUT },
  // pkg/log and version/version.go, both programs. `log-format` is mapped (see takeLegacyFlags).
  "log-format": { kind: "value", components: BOTH },
  "custom-user-agent": { kind: "value", components: BOTH, ignoredBecause: "podidentity's requests carry its own User-Agent (component and version); a custom suffix is not supported" },
  enableProfile: { kind: "bool", components: BOTH, ignoredBecause: "podidentity has no pprof endpoint (Node.js profiles with --cpu-prof / --heap-prof)" },
  enableScaleFeatures: { kind: "bool", components: BOTH, ignoredBecause: "what v1.8 put behind it (informers instead of lists, batched updates, no per-pod status churn) is always on" },
  // NMI (cmd/nmi/main.go)
  MICNamespace: {
    kind: "value",
    components: ["nmi"],
    ignoredBecause: "MIC's own token requests reach IMDS through the AzurePodIdentityException the installer renders, not through a namespace and pod-name pattern any pod named mic-* could match",
  },
  "retry-attempts-for-created": { kind: "value", components: ["nmi"], ignoredBecause: "NMI waits on the AzureAssignedIdentity watch instead of polling, for up to --wait-for-assignment (default 20s)" },
  "retry-attempts-for-assigned": { kind: "value", components: ["nmi"], ignoredBecause: "NMI waits on the AzureAssignedIdentity watch instead of polling, for up to --wait-for-assignment (default 20s)" },
  "find-identity-retry-interval": { kind: "value", components: ["nmi"], ignoredBecause: "NMI waits on the AzureAssignedIdentity watch instead of polling, for up to --wait-for-assignment (default 20s)" },
  "set-retry-after-header": { kind: "bool", components: ["nmi"], ignoredBecause: "NMI always sets Retry-After on its 429 and 503 answers" },
  // MIC (cmd/mic/main.go)
  syncRetryDuration: { kind: "value", components: ["mic"], ignoredBecause: "MIC reconciles on every change and repairs drift every --identity-assignment-reconcile-interval" },
  createDeleteBatch: { kind: "value", components: ["mic"], ignoredBecause: "MIC puts all changes for one VM/VMSS into one update" },
  clientQps: { kind: "value", components: ["mic"], ignoredBecause: "MIC reads Kubernetes through watches; its ARM writes are paced by --arm-write-budget" },
  "update-user-msi-max-retry": { kind: "value", components: ["mic"], ignoredBecause: ARM_RETRY },
  "update-user-msi-retry-interval": { kind: "value", components: ["mic"], ignoredBecause: ARM_RETRY },
  "enable-type-upgrade": { kind: "bool", components: ["mic"], ignoredBecause: TYPE_UPGRADE },
  "type-upgrade-status-key": { kind: "value", components: ["mic"], ignoredBecause: TYPE_UPGRADE },
  "config-map-name": { kind: "value", components: ["mic"], ignoredBecause: TYPE_UPGRADE },
};

/** The names of v1.8's flags `component` takes out and maps or ignores (for tests and help texts). */
export function legacyFlagNames(component: LegacyComponent): string[] {
  return Object.entries(FLAGS)
    .filter(([, f]) => f.components.includes(component))
    .map(([name]) => name);
}

export interface LegacyFlagNotice {
  /** The flag as given, without its value, e.g. `--MICNamespace` or `-v`. */
  flag: string;
  action: "mapped" | "ignored";
  /** What it became, or why it is ignored. */
  detail: string;
}

export interface LegacyFlags {
  /** The arguments without the legacy flags (and their values), for the program's own parser. */
  args: string[];
  /** One per legacy flag given, in order: log each once at startup (`ignored` at warn, `mapped` at info). */
  notices: LegacyFlagNotice[];
  /** The log level klog's `-v` maps to (`-v` ≥ 5: debug, ≥ 8: trace; less: info), when `-v` was given. */
  logLevel: string | undefined;
}

/** klog's verbosity → pino's level: v1.8 logged request details at V(5) and wire dumps at V(8) and above. */
function levelForVerbosity(v: number): string {
  return v >= 8 ? "trace" : v >= 5 ? "debug" : "info";
}

/**
 * Takes v1.8's flags out of `argv` (one or two dashes, `=value` or a separate value as Go's flag package reads
 * them; klog's underscores also as dashes) and reports each. Throws {@link CliValueError} for a value Go would also
 * have refused (`-v=x`, `--log-format=xml`, a value flag at the end with no value, `--logtostderr=maybe`).
 */
export function takeLegacyFlags(argv: readonly string[], component: LegacyComponent): LegacyFlags {
  const args: string[] = [];
  const notices: LegacyFlagNotice[] = [];
  let logLevel: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      args.push(...argv.slice(i));
      break;
    }
    const m = /^(--?)([A-Za-z][\w.-]*)(?:=(.*))?$/s.exec(arg);
    const given = m?.[2];
    const name = given === undefined ? undefined : FLAGS[given] !== undefined ? given : FLAGS[given.replaceAll("-", "_")] !== undefined ? given.replaceAll("-", "_") : undefined;
    const flag = name === undefined ? undefined : FLAGS[name];
    if (m === null || name === undefined || flag === undefined || !flag.components.includes(component)) {
      args.push(arg);
      continue;
    }
    const shown = `${m[1]}${given}`;
    let value = m[3];
    if (flag.kind === "bool") {
      if (value !== undefined) parseBool(value);
    } else if (value === undefined) {
      if (i + 1 >= argv.length) throw new CliValueError(`flag needs an argument: ${shown}`);
      value = argv[++i]!;
    }
    if (name === "v") {
      let verbosity: number;
      try {
        verbosity = parseInteger(value!);
      } catch {
        throw new CliValueError(`${shown}: klog's verbosity must be an integer, got "${value}"`);
      }
      logLevel = levelForVerbosity(verbosity);
      notices.push({ flag: shown, action: "mapped", detail: `klog verbosity ${verbosity} → log level ${logLevel} (unless --log-level is given)` });
    } else if (name === "log-format") {
      if (value !== "json" && value !== "text") throw new CliValueError(`${shown}: unknown logging format "${value}", only "text" and "json" are supported`);
      notices.push(
        value === "json"
          ? { flag: shown, action: "mapped", detail: "podidentity always logs JSON lines" }
          : { flag: shown, action: "ignored", detail: "podidentity logs JSON lines only (klog's text format is not available)" },
      );
    } else {
      notices.push({ flag: shown, action: "ignored", detail: flag.ignoredBecause ?? "no equivalent in podidentity" });
    }
  }
  return { args, notices, logLevel };
}

/** The two levels `logLegacyFlagNotices` writes at (a pino logger has them). */
export interface NoticeLogger {
  warn(fields: object, message: string): void;
  info(fields: object, message: string): void;
}

/** Logs each notice once: ignored flags at warn with the reason, mapped ones at info with what they became. */
export function logLegacyFlagNotices(logger: NoticeLogger, notices: readonly LegacyFlagNotice[]): void {
  for (const notice of notices) {
    if (notice.action === "ignored") logger.warn({ flag: notice.flag, reason: notice.detail }, "aad-pod-identity v1.8 flag ignored");
    else logger.info({ flag: notice.flag, mappedTo: notice.detail }, "aad-pod-identity v1.8 flag mapped");
  }
}
