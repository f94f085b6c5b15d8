import { renderCrdsYaml } from "@podidentity/api";
import { parseBool, parseCsv } from "@podidentity/daemon";
import { Command, CommanderError, Option } from "commander";
import { INSTALL_VERSION, InstallOptionsError, resolveInstallOptions, type InstallOptions } from "./install-options";
import { formatUnmapped } from "./chart-values";
import { identitiesFromValues, parseInstallValues } from "./install-values";
import { installWarnings, renderInstallYaml } from "./render-install-yaml";

/** Where the CLI writes; tests pass buffers, main.ts passes process.stdout/stderr. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  readFile: (path: string) => string;
}

const bool = parseBool;
const csv = parseCsv;

interface RenderFlags {
  mode?: string;
  kubeVersion?: string;
  namespace?: string;
  forceNamespaced?: boolean;
  imageRegistry?: string;
  tag?: string;
  azureJsonSecret?: string;
  immutableUserMsis?: string[];
  allowAccessToSecrets?: boolean;
  values?: string;
  allowUnmappedValues?: boolean;
  startupTaint?: boolean;
  prometheusRecordingRules?: boolean;
  crds?: boolean;
}

function render(flags: RenderFlags, io: CliIo, argv: readonly string[]): void {
  if (flags.crds) {
    io.stdout(renderCrdsYaml());
    return;
  }
  // Precedence: flags, then the values file (v1.8 chart settings), then the defaults.
  const values = flags.values === undefined ? undefined : parseInstallValues(io.readFile(flags.values), flags.values);
  if (values !== undefined && values.unmapped.length > 0) {
    const lines = formatUnmapped(values.unmapped);
    if (!flags.allowUnmappedValues) {
      throw new InstallOptionsError(
        `${flags.values}: ${lines.length} value(s) podidentity does not honour (render with --allow-unmapped-values to ignore them with a warning):\n${lines.map((l) => `  ${l}`).join("\n")}`,
      );
    }
    for (const line of lines) io.stderr(`warning: ${flags.values}: ignored ${line}\n`);
  }
  const base = resolveInstallOptions({
    ...values?.options,
    ...(flags.startupTaint !== undefined && { startupTaint: flags.startupTaint }),
    ...(flags.prometheusRecordingRules !== undefined && { prometheusRecordingRules: flags.prometheusRecordingRules }),
    ...(flags.mode !== undefined && { mode: flags.mode as InstallOptions["mode"] }),
    ...(flags.namespace !== undefined && { namespace: flags.namespace }),
    ...(flags.forceNamespaced !== undefined && { forceNamespaced: flags.forceNamespaced }),
    ...(flags.imageRegistry !== undefined && { imageRegistry: flags.imageRegistry }),
    ...(flags.tag !== undefined && { tag: flags.tag }),
    ...(flags.azureJsonSecret !== undefined && { azureJsonSecret: flags.azureJsonSecret }),
    ...(flags.immutableUserMsis !== undefined && { immutableUserMsis: flags.immutableUserMsis }),
    ...(flags.allowAccessToSecrets !== undefined && { allowAccessToSecrets: flags.allowAccessToSecrets }),
    ...(flags.kubeVersion !== undefined && { kubeVersion: flags.kubeVersion }),
  });
  const options = { ...base, identities: values ? identitiesFromValues(values, base.namespace) : [] };
  for (const warning of installWarnings(options)) io.stderr(`warning: ${warning}\n`);
  io.stdout(renderInstallYaml(options, [`Rendered by \`${["podidentity-install", ...argv].join(" ")}\`.`]));
}

/**
 * Runs `podidentity-install <argv>` and returns the exit status: 0, or 1 with the reason on stderr (bad options,
 * bad values, an unreadable file). YAML goes to stdout only on success, so `| kubectl apply -f -` never applies
 * half a rendering.
 */
export function runCli(argv: readonly string[], io: CliIo): number {
  const program = new Command("podidentity-install")
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .description("Installs podidentity (MIC and NMI) on a cluster: prints manifests for `kubectl apply -f -`")
    .version(INSTALL_VERSION, "--version");

  program
    .command("render")
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .description("print the manifests (YAML) for the chosen options; apply the CRDs first (render --crds)")
    .addOption(new Option("--mode <mode>", "standard (MIC + NMI) or managed (NMI only; identities assigned by hand)").choices(["standard", "managed"]))
    .option("--namespace <ns>", "namespace of MIC, NMI and their RBAC (default kube-system)")
    .option("--force-namespaced [bool]", "bindings only give pods identities of their own namespace (default true; false = v1.8's cross-namespace matching)", bool)
    .option("--image-registry <registry>", "registry and path of the podidentity-mic / podidentity-nmi images (default ghcr.io/podidentity)")
    .option("--tag <tag>", `image tag (default ${INSTALL_VERSION})`)
    .option("--azure-json-secret <name>", "Secret with MIC's azure.json under the key azure.json (default podidentity-azure-json)")
    .option("--immutable-user-msis <clientIds>", "comma-separated client IDs MIC never removes from a VM/VMSS", csv)
    .option("--allow-access-to-secrets [bool]", "let NMI read Secrets (needed by service-principal identities)", bool)
    .option("--kube-version <version>", "the cluster's Kubernetes version (e.g. v1.28.4): refuse to render below the minimum, 1.21")
    .option("--startup-taint [bool]", "NMI removes the startup taint podidentity.io/nmi-not-ready from its node, which needs write access to Nodes (default true; false: read-only Nodes)", bool)
    .option(
      "--prometheus-recording-rules [bool]",
      "add a PrometheusRule (monitoring.coreos.com/v1) recording aad-pod-identity v1.8's aadpodidentity_* metric names, for v1.8 dashboards (default false)",
      bool,
    )
    .option("--values <file>", "values of aad-pod-identity v1.8's chart 4.1.x or podidentity's chart: every key is honoured or reported (an error unless --allow-unmapped-values)")
    .option("--allow-unmapped-values", "render even when the values file has keys podidentity does not honour, with a warning naming each")
    .option("--crds", "print only the CustomResourceDefinitions (= deploy/crds/crds.yaml)")
    .action((flags: RenderFlags) => render(flags, io, argv));

  try {
    program.parse([...argv], { from: "user" });
    return 0;
  } catch (error) {
    // --help and --version end through exitOverride with exit code 0.
    if (error instanceof CommanderError) return error.exitCode;
    // InstallOptionsError: bad options or values; anything else (an unreadable values file) keeps its message.
    const message = error instanceof InstallOptionsError ? error.message : ((error as Error).message ?? String(error));
    io.stderr(`podidentity-install: ${message}\n`);
    return 1;
  }
}
