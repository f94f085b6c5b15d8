// YAML files imported as their text: tsup's text loader (tsup.config.ts) and the matching Vite plugin
// (vitest.config.ts) bundle them, so the installer carries the chart's files without reading the disk.
declare module "*.yaml" {
  const text: string;
  export default text;
}
