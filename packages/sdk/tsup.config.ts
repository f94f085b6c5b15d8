import { defineConfig } from "tsup";
import { libraryBuild } from "../../tsup.shared";

export default defineConfig(libraryBuild({ name: "cli", entry: "src/cli.ts" }));
