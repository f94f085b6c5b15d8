import { defineConfig } from "tsup";
import { libraryBuild } from "../../tsup.shared";

// The chart's files render needs (src/prometheus-rules.ts) are bundled as text.
export default defineConfig(libraryBuild({ name: "main", entry: "src/main.ts" }).map((o) => ({ ...o, loader: { ".yaml": "text" } })));
