// The build every library package shares (imported by each package's tsup.config.ts): src/index.ts as ESM + CJS
// with type declarations, plus, for packages with a bin, the program as ESM with a shebang.
import type { Options } from "tsup";

const common = { sourcemap: true, target: "node22" } satisfies Options;

export function libraryBuild(program?: { name: string; entry: string }): Options[] {
  const library: Options = { ...common, entry: { index: "src/index.ts" }, format: ["esm", "cjs"], dts: true, clean: true };
  if (program === undefined) return [library];
  return [
    library,
    { ...common, entry: { [program.name]: program.entry }, format: ["esm"], banner: { js: "#!/usr/bin/env node" } },
  ];
}
