import { stringify } from "yaml";
import { InstallOptionsError, INSTALL_VERSION, resolveInstallOptions, type InstallInput, type InstallOptions } from "./install-options";
import { isServicePrincipal } from "./install-values";
import { renderManifests, type InstallManifest } from "./render-manifests";

/** The command that regenerates the checked-in deploy/ files; named in their headers. */
export const RENDER_DEPLOY_COMMAND = "pnpm --filter @podidentity/install run render-deploy";

/** The checked-in renderings under deploy/ (paths relative to the repository root) and the options of each. */
export const DEPLOY_FILES: readonly { path: string; options: Partial<InstallOptions>; command: string }[] = [
  { path: "deploy/podidentity-standard.yaml", options: { mode: "standard" }, command: "podidentity-install render --mode standard" },
  { path: "deploy/podidentity-managed.yaml", options: { mode: "managed" }, command: "podidentity-install render --mode managed" },
];

/** The header lines of a checked-in rendering. */
export function deployFileHeader(command: string): string[] {
  return [`Checked-in output of \`${command}\`; regenerate with \`${RENDER_DEPLOY_COMMAND}\`, do not edit by hand.`];
}

/**
 * Checks what options alone cannot: service-principal identities need NMI to read Secrets. Returns warnings for
 * what renders but probably does not do what the user meant: with namespaced matching, bindings that v1.8 served
 * across namespaces; in any mode, bindings naming another namespace's identity.
 */
export function installWarnings(input: InstallInput = {}): string[] {
  const o = resolveInstallOptions(input);
  const sp = o.identities.filter(isServicePrincipal);
  if (sp.length > 0 && !o.allowAccessToSecrets) {
    const names = sp.map((p) => `${p.identity.metadata.namespace}/${p.identity.metadata.name}`).join(", ");
    throw new InstallOptionsError(
      `service-principal identities (${names}) need NMI to read their clientPassword Secret: add --allow-access-to-secrets (or rbac.allowAccessToSecrets: true in the values)`,
    );
  }
  const warnings: string[] = [];
  for (const { identity, binding } of o.identities) {
    const idNs = identity.metadata.namespace;
    const bindingNs = binding.metadata.namespace;
    const where = `AzureIdentityBinding ${bindingNs}/${binding.metadata.name}`;
    if (bindingNs !== idNs) {
      // As in v1.8, whatever the matching mode: the identity is looked up in the binding's namespace.
      warnings.push(`${where} names identity ${identity.metadata.name} from namespace ${idNs}: bindings only use identities of their own namespace, so it selects nothing; put both in the pods' namespace`);
    } else if (o.forceNamespaced && bindingNs === o.namespace) {
      // v1.8's chart put identities in the release namespace and served pods of every namespace from there.
      warnings.push(
        `${where} is in the install namespace ${o.namespace}: with --force-namespaced=true it only serves pods in ${o.namespace}; v1.8 served pods of every namespace from it. set the entry's namespace to the pods' namespace in the values, or render with --force-namespaced=false to keep v1.8's cross-namespace matching`,
      );
    }
  }
  return warnings;
}

/**
 * The manifests as one multi-document YAML stream for `kubectl apply -f -`, with a header naming the options.
 * No YAML anchors, lines never folded, so renderings diff cleanly.
 */
export function renderInstallYaml(input: InstallInput = {}, extraHeaderLines: readonly string[] = []): string {
  const o = resolveInstallOptions(input);
  installWarnings(o);
  return manifestsToYaml(renderManifests(o), [
    `podidentity ${INSTALL_VERSION}, ${o.mode} mode, namespace ${o.namespace}.`,
    ...extraHeaderLines,
    "Apply the CRDs first (deploy/crds/crds.yaml, or `podidentity-install render --crds`), then this file.",
  ]);
}

export function manifestsToYaml(manifests: readonly InstallManifest[], headerLines: readonly string[]): string {
  const header = headerLines.map((l) => `# ${l}`).join("\n");
  const docs = manifests.map((m) => stringify(m, { aliasDuplicateObjects: false, lineWidth: 0 }));
  return `${header}\n---\n${docs.join("---\n")}`;
}
