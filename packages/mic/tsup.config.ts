import { defineConfig } from "tsup";
import { libraryBuild } from "../../tsup.shared";

const [library, program] = libraryBuild({ name: "main", entry: "src/main.ts" });

export default defineConfig([
  library!,
  {
    ...program!,
    // The program is one file with its dependencies inside: Node then resolves, stats and reads one module instead
    // of about 400 (undici, yaml, prom-client, @azure/identity and theirs): start to /readyz 1.40 s -> 0.57 s
    // (docs/benchmarks.md), `--help` peak RSS 98 -> 79 MB. The dependencies stay runtime dependencies (the index build and
    // the image's `pnpm deploy --prod` use them). Bundled CommonJS calls `require`, which ESM lacks: the banner
    // provides it.
    noExternal: [/./],
    banner: { js: "#!/usr/bin/env node\nimport { createRequire as __podidentityCreateRequire } from \"node:module\";\nconst require = __podidentityCreateRequire(import.meta.url);" },
  },
]);
