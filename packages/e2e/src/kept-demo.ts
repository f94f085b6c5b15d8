/**
 * `demo.js --keep` leaves the cluster running inside its private namespaces; `demo.js exec -- <command>` runs one's
 * own program in one of its pods, as the pod's container would run: in the pod's network namespace (so
 * 169.254.169.254 goes through NMI), with the pod's hosts file (the real Azure host names → the emulators) and
 * resolv.conf bind-mounted over /etc, and the testbed CA trusted. The kept demo writes what that needs to a state
 * file; `exec` joins the namespaces with nsenter.
 */
import { spawn } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Where the kept demo writes its state; per user, since a rootless demo belongs to that user. */
export function keptDemoStatePath(): string {
  return join(tmpdir(), `podidentity-demo-${process.getuid?.() ?? "user"}`, "kept.json");
}

export interface KeptPod {
  name: string;
  namespace: string;
  netns: string;
  hostsFile: string;
  resolvFile: string;
}

export interface KeptDemoState {
  /** Machine-wide PID of the private namespaces' init (nsenter --target). */
  initPid: number;
  mode: "root" | "rootless";
  /** The first pod is the default of `exec` (the one bound to the identity). */
  pods: KeptPod[];
  /** Environment the pods' containers get (CA variables, the app's settings). */
  env: Record<string, string>;
}

export async function writeKeptDemoState(state: KeptDemoState): Promise<string> {
  const path = keptDemoStatePath();
  await mkdir(join(path, ".."), { recursive: true, mode: 0o700 });
  await writeFile(path, JSON.stringify(state, null, 2) + "\n", { mode: 0o600 });
  return path;
}

export async function removeKeptDemoState(): Promise<void> {
  await rm(keptDemoStatePath(), { force: true });
}

// What the topology does for each process it starts in a pod (packages/testbed/src/netns/process-runner.ts).
const BIND_SCRIPT = 'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@"';
const DROPPED_ENV = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "NO_PROXY", "no_proxy", "AZURE_POD_IDENTITY_AUTHORITY_HOST"];

/** The nsenter command line that runs `command` in `pod` of the kept demo. */
export function execInPodArgv(state: KeptDemoState, pod: KeptPod, command: readonly string[], cwd: string): string[] {
  return [
    "nsenter",
    `--target=${state.initPid}`,
    ...(state.mode === "rootless" ? ["--user", "--preserve-credentials"] : []),
    "--net",
    "--mount",
    `--wd=${cwd}`,
    "ip", "netns", "exec", pod.netns,
    "/bin/sh", "-c", BIND_SCRIPT, "podid-exec", pod.hostsFile, pod.resolvFile,
    ...command,
  ];
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, owned by someone else (a demo run as root, seen by a user)
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** `demo.js exec [--pod NAME] -- COMMAND [ARGS…]`: returns the command's exit status. */
export async function execInKeptDemo(args: readonly string[], err: (line: string) => void): Promise<number> {
  const usage = "usage: node packages/e2e/dist/demo.js exec [--pod NAME] -- COMMAND [ARGS…]   (with `make demo ARGS=--keep` running)";
  const dashdash = args.indexOf("--");
  const options = dashdash === -1 ? args : args.slice(0, dashdash);
  const command = dashdash === -1 ? [] : args.slice(dashdash + 1);
  let podName: string | undefined;
  for (let i = 0; i < options.length; i++) {
    if (options[i] === "--pod" && options[i + 1]) podName = options[++i];
    else {
      err(`demo exec: unknown option ${JSON.stringify(options[i])}\n${usage}`);
      return 2;
    }
  }
  if (command.length === 0) {
    err(`demo exec: no command given\n${usage}`);
    return 2;
  }
  let state: KeptDemoState;
  try {
    state = JSON.parse(await readFile(keptDemoStatePath(), "utf8")) as KeptDemoState;
  } catch {
    err(`demo exec: no kept demo: ${keptDemoStatePath()} does not exist; start one with \`make demo ARGS=--keep\` and leave it running`);
    return 1;
  }
  if (!processExists(state.initPid)) {
    err(`demo exec: the kept demo (namespaces' init ${state.initPid}) is no longer running; start it again with \`make demo ARGS=--keep\``);
    await removeKeptDemoState();
    return 1;
  }
  if (state.mode === "root" && process.geteuid?.() !== 0) {
    err("demo exec: the demo runs as root; run this as root too (sudo env PATH=\"$PATH\" node packages/e2e/dist/demo.js exec -- …)");
    return 1;
  }
  const pod = podName === undefined ? state.pods[0] : state.pods.find((p) => p.name === podName);
  if (!pod) {
    err(`demo exec: no pod ${JSON.stringify(podName)}; the kept demo has ${state.pods.map((p) => p.name).join(", ")}`);
    return 1;
  }
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of DROPPED_ENV) delete env[k];
  Object.assign(env, state.env);
  const [cmd, ...rest] = execInPodArgv(state, pod, command, process.cwd());
  const child = spawn(cmd!, rest, { stdio: "inherit", env });
  // Ctrl-C reaches the command directly (same process group); this process only waits for it.
  const ignore = (): void => undefined;
  process.on("SIGINT", ignore);
  try {
    return await new Promise<number>((resolve) => {
      child.once("error", (error) => {
        err(`demo exec: ${error.message} (nsenter comes with util-linux)`);
        resolve(127);
      });
      child.once("close", (code, signal) => resolve(code ?? (signal === "SIGINT" ? 130 : 1)));
    });
  } finally {
    process.off("SIGINT", ignore);
  }
}
