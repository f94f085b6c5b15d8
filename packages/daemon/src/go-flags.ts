/**
 * Go's flag package (MIC in v1.8, and klog's flags in both programs) accepts a long flag with one dash
 * (`-kubeconfig=/x`, `-v=2`) as well as two; commander reads one dash as short flags. This rewrites the one-dash
 * spellings of the flags a program declares to two dashes, and leaves everything else alone: values
 * (`--log-level -1`... are not flags), short flags the program declares, and everything after `--`.
 */
export function goStyleArgs(argv: readonly string[], longFlags: ReadonlySet<string>): string[] {
  const out: string[] = [];
  let rest = false;
  for (const arg of argv) {
    if (rest || arg === "--") {
      rest = true;
      out.push(arg);
      continue;
    }
    const m = /^-([A-Za-z][\w.-]*)(=.*)?$/s.exec(arg);
    out.push(m !== null && longFlags.has(m[1]!) ? `-${arg}` : arg);
  }
  return out;
}

/** The long flag names (without dashes) of commander-style flag specs such as `--node <name>` or `-p, --port <n>`. */
export function longFlagNames(specs: Iterable<string>): Set<string> {
  const names = new Set<string>();
  for (const spec of specs) for (const m of spec.matchAll(/--([A-Za-z][\w.-]*)/g)) names.add(m[1]!);
  return names;
}
