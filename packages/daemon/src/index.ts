export { CliValueError, forceNamespacedSetting, parseBool, parseCsv, parseDuration, parseInteger, parsePort } from "./cli-values";
export { goStyleArgs, longFlagNames } from "./go-flags";
export { legacyFlagNames, takeLegacyFlags, type LegacyComponent, type LegacyFlagNotice, type LegacyFlags } from "./legacy-flags";
