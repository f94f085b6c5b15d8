export { CliValueError, forceNamespacedSetting, formatDuration, orUsageError, parseBool, parseCsv, parseDuration, parseInteger, parsePort, type UsageErrorReporter } from "./cli-values";
export { DaemonError, errorLogFields, exitOnStartupError, type FatalLogger } from "./daemon-error";
export { goStyleArgs, longFlagNames } from "./go-flags";
export { legacyFlagNames, logLegacyFlagNotices, takeLegacyFlags, type LegacyComponent, type LegacyFlagNotice, type LegacyFlags, type NoticeLogger } from "./legacy-flags";
export { retryAfterMs } from "./retry-after";
export { OpsServer, type OpsAnswer, type OpsRoute, type OpsServerOptions } from "./ops-server";
export { runDaemon, type DaemonHost, type DaemonLogger, type RunDaemonOptions, type StopSignal } from "./run-daemon";
