import { stringify } from "yaml";
import { customResourceDefinitions } from "./custom-resource-definitions";

/** The command that regenerates deploy/crds/crds.yaml; named in the file's header. */
export const RENDER_CRDS_COMMAND = "pnpm --filter @podidentity/api run render-crds";

/**
 * The CRDs as one multi-document YAML file, with a header saying it is generated. `kubectl apply -f` takes it
 * as is. Sub-schemas are written out in full (no YAML anchors), lines are never folded, so diffs stay readable.
 */
export function renderCrdsYaml(): string {
  const header = [
    "# Custom resource definitions of podidentity (aadpodidentity.k8s.io/v1).",
    `# Generated from packages/api by \`${RENDER_CRDS_COMMAND}\`; do not edit by hand.`,
  ].join("\n");
  const documents = customResourceDefinitions().map((crd) =>
    stringify(crd, { aliasDuplicateObjects: false, lineWidth: 0 }),
  );
  return `${header}\n---\n${documents.join("---\n")}`;
}
