/**
 * Runs NMI and MIC from the images scripts/build-images.sh built (out/images/oci), with crun and no container
 * engine, as a kubelet would run the rendered DaemonSet's and Deployment's containers:
 *
 * - each image is unpacked once (`umoci raw unpack`) and shared read-only by all its containers;
 * - each start is a new OCI bundle whose config.json is the image's (entrypoint, user, env) with the pod's
 *   security settings: a read-only root, tmpfs /run and /tmp, `noNewPrivileges`, only the capabilities in
 *   `CONTAINER_CAPABILITIES` (NMI: NET_ADMIN and NET_RAW; MIC: none, as uid 65532);
 * - the container joins the node's network namespace by path (hostNetwork), never creates one, so NMI's iptables
 *   rules land in that node's namespace; crun itself is started there by the topology, with the node's hosts and
 *   resolv.conf bind-mounted over /etc, which the container gets too;
 * - every file the launch names (kubeconfig, azure.json, the CA in NODE_EXTRA_CA_CERTS) is mounted read-only at
 *   the same path, owned by the container's user, as a pod gets its Secrets and ConfigMaps.
 *
 * crun runs with `--cgroup-manager=disabled` (no cgroup is created or changed on the machine) and its own state
 * directory; `close()` deletes every container it started, even one whose crun was killed.
 */
import { execFile, execFileSync } from "node:child_process";
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, isAbsolute, join, resolve } from "node:path";
import { promisify } from "node:util";
import { PROGRAMS, type ComponentLaunch, type ComponentRunner } from "../../src/cluster-options";

const pexec = promisify(execFile);

export const REPO_ROOT = resolve(import.meta.dirname, "../../../..");
/** Where scripts/build-images.sh writes its OCI image layouts (`$PODIDENTITY_IMAGES_DIR/oci`, as the script does). */
export const IMAGES_DIR = join(process.env["PODIDENTITY_IMAGES_DIR"] || join(REPO_ROOT, "out/images"), "oci");

/** What each container may do beyond an unprivileged process: as the rendered manifests allow, nothing more. */
export const CONTAINER_CAPABILITIES: Record<ComponentLaunch["component"], readonly string[]> = {
  nmi: ["CAP_NET_ADMIN", "CAP_NET_RAW"],
  mic: [],
};

/** The `<layout>:<tag>` of a built image, or undefined when it was not built. */
export function imageRef(component: ComponentLaunch["component"]): string | undefined {
  const layout = join(IMAGES_DIR, `podidentity-${component}`);
  if (!existsSync(join(layout, "index.json"))) return undefined;
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as { manifests?: { annotations?: Record<string, string> }[] };
  const tag = index.manifests?.[0]?.annotations?.["org.opencontainers.image.ref.name"];
  return tag ? `${layout}:${tag}` : undefined;
}

/**
 * Why the built image of `component` cannot be used for this tree, or undefined when it can: not built, or its
 * `/app/dist/main.js` (in its last layer, the app) differs from packages/<component>/dist/main.js, i.e. the image
 * was built before the program last changed (run `make images` again).
 */
export function imageProblem(component: ComponentLaunch["component"]): string | undefined {
  const ref = imageRef(component);
  if (!ref) return `no podidentity-${component} image in ${IMAGES_DIR} (run \`make images\`)`;
  const layout = join(IMAGES_DIR, `podidentity-${component}`);
  const blob = (digest: string): string => join(layout, "blobs", ...digest.split(":"));
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(readFileSync(blob(index.manifests[0]!.digest), "utf8")) as { layers: { digest: string }[] };
  const app = execFileSync("tar", ["-xzOf", blob(manifest.layers.at(-1)!.digest), "./app/dist/main.js"], { maxBuffer: 64 * 1024 * 1024, timeout: 60_000 });
  if (!app.equals(readFileSync(PROGRAMS[component]()))) return `${ref} holds another build of @podidentity/${component} than packages/${component}/dist (run \`make images\` again)`;
  return undefined;
}

/**
 * crun refuses to start on a machine whose cgroups are in hybrid mode with controllers on the v2 hierarchy ("cgroups
 * in hybrid mode not supported") and on a fresh sysfs without them (what `ip netns exec` mounts), even with
 * `--cgroup-manager=disabled`. An empty tmpfs over /sys/fs/cgroup, in crun's own mount namespace only, reads as
 * cgroup v1 with nothing mounted; crun then creates and changes no cgroup.
 */
const HIDE_CGROUPS_SCRIPT = 'mount -t tmpfs -o size=64k,mode=0755 podid-no-cgroups /sys/fs/cgroup && exec crun "$@"';

interface OciSpec {
  process: { args: string[]; env?: string[]; user: { uid: number; gid: number }; cwd: string; capabilities?: Record<string, string[]>; noNewPrivileges?: boolean; terminal?: boolean };
  root: { path: string; readonly?: boolean };
  mounts?: { destination: string; type?: string; source?: string; options?: string[] }[];
  linux: { namespaces?: { type: string; path?: string }[]; [key: string]: unknown };
  [key: string]: unknown;
}

/** The existing absolute file paths among a launch's arguments (`--kubeconfig /x`, `--flag=/x`) and environment. */
function referencedFiles(launch: ComponentLaunch): string[] {
  const values = [...launch.args.map((a) => a.replace(/^--[^=]+=/, "")), ...Object.values(launch.env)];
  return [...new Set(values.filter((v) => isAbsolute(v) && existsSync(v) && statSync(v).isFile()))];
}

export class ImageRunner {
  readonly #dir: string;
  readonly #stateDir: string;
  readonly #bundles = new Map<ComponentLaunch["component"], { rootfs: string; spec: OciSpec }>();
  readonly #started: string[] = [];

  private constructor(dir: string) {
    this.#dir = dir;
    this.#stateDir = join(dir, "crun-state");
  }

  /** Unpacks both images (a few seconds each). */
  static async prepare(): Promise<ImageRunner> {
    const runner = new ImageRunner(await mkdtemp(join(tmpdir(), "podidentity-images-")));
    try {
      for (const component of ["nmi", "mic"] as const) {
        const ref = imageRef(component);
        if (!ref) throw new Error(`ImageRunner: no podidentity-${component} image in ${IMAGES_DIR}: run \`make images\` (scripts/build-images.sh) first`);
        const bundle = join(runner.#dir, `image-${component}`);
        await mkdir(bundle);
        // `raw unpack`: no mtree manifest for `umoci repack` (which took most of `umoci unpack`'s ~50 s here)
        await pexec("umoci", ["raw", "unpack", "--image", ref, join(bundle, "rootfs")], { timeout: 180_000 });
        await pexec("umoci", ["raw", "runtime-config", "--image", ref, "--rootfs", join(bundle, "rootfs"), join(bundle, "config.json")], { timeout: 60_000 });
        const spec = JSON.parse(await readFile(join(bundle, "config.json"), "utf8")) as OciSpec;
        runner.#bundles.set(component, { rootfs: join(bundle, "rootfs"), spec });
      }
    } catch (error) {
      await rm(runner.#dir, { recursive: true, force: true });
      throw error;
    }
    return runner;
  }

  /** The container ID of each start, in order. */
  get containers(): readonly string[] {
    return this.#started;
  }

  /** For E2eClusterOptions.runner: `crun run` of a bundle made for this launch. */
  readonly runner: ComponentRunner = (launch) => {
    const id = `podid-${launch.instance.replace(/[^A-Za-z0-9_.-]/g, "-")}`;
    const bundle = join(this.#dir, "bundles", id);
    mkdirSync(bundle, { recursive: true });
    writeFileSync(join(bundle, "config.json"), JSON.stringify(this.#spec(launch, bundle), null, 2));
    this.#started.push(id);
    // started by the topology inside the node's network namespace, in a mount namespace of its own (ip netns exec)
    return { command: "sh", args: ["-c", HIDE_CGROUPS_SCRIPT, "crun", ...this.#crun(), "run", "--bundle", bundle, id] };
  };

  #crun(): string[] {
    return ["--root", this.#stateDir, "--cgroup-manager=disabled"];
  }

  /** crun state/exec/delete from here, in a private mount namespace (unshare) for HIDE_CGROUPS_SCRIPT's mount. */
  async #crunHere(args: readonly string[], timeout: number): Promise<{ stdout: string; stderr: string }> {
    return pexec("unshare", ["--mount", "--propagation", "private", "sh", "-c", HIDE_CGROUPS_SCRIPT, "crun", ...this.#crun(), ...args], { timeout });
  }

  #spec(launch: ComponentLaunch, bundle: string): OciSpec {
    const image = this.#bundles.get(launch.component);
    if (!image) throw new Error(`ImageRunner: ${launch.component} was not prepared`);
    const spec = structuredClone(image.spec);
    const caps = [...CONTAINER_CAPABILITIES[launch.component]];
    const imageEnv = (spec.process.env ?? []).filter((e) => !(e.split("=")[0]! in launch.env));
    spec.process = {
      ...spec.process,
      args: [...spec.process.args, ...launch.args],
      env: [...imageEnv, ...Object.entries(launch.env).map(([k, v]) => `${k}=${v}`)],
      terminal: false,
      noNewPrivileges: true,
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
    };
    spec.root = { path: image.rootfs, readonly: true };
    const tmpfs = (destination: string) => ({ destination, type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=1777", "size=16m"] });
    const bind = (source: string, destination = source) => ({ destination, type: "bind", source, options: ["rbind", "ro", "nosuid", "nodev"] });
    spec.mounts = [
      // no /sys/fs/cgroup: no cgroup is made for the container (see HIDE_CGROUPS_SCRIPT)
      ...(spec.mounts ?? []).filter((m) => !["/run", "/tmp", "/etc/hosts", "/etc/resolv.conf", "/sys/fs/cgroup"].includes(m.destination)),
      tmpfs("/run"),
      tmpfs("/tmp"),
      // the node's files (the topology bind-mounted them over /etc where crun runs)
      bind("/etc/hosts"),
      bind("/etc/resolv.conf"),
      ...this.#secretFiles(launch, bundle, spec.process.user).map(([copy, path]) => bind(copy, path)),
    ];
    // hostNetwork: the node's namespace by path; a fresh PID, IPC, UTS and mount namespace as a pod has
    spec.linux.namespaces = [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }, { type: "network", path: `/run/netns/${launch.node.netns}` }];
    delete spec.linux["resources"];
    return spec;
  }

  /**
   * The launch's files, copied into the bundle and owned by the container's user with mode 0400 (as the kubelet
   * projects a Secret for the pod's user): the harness writes some with mode 0600 for root, which MIC (65532) could
   * not read. Pairs of [copy, path in the container].
   */
  #secretFiles(launch: ComponentLaunch, bundle: string, user: { uid: number; gid: number }): [string, string][] {
    mkdirSync(join(bundle, "files"), { recursive: true });
    return referencedFiles(launch).map((path, i) => {
      const copy = join(bundle, "files", `${i}-${basename(path)}`);
      copyFileSync(path, copy);
      chownSync(copy, user.uid, user.gid);
      chmodSync(copy, 0o400);
      return [copy, path];
    });
  }

  /** `crun state`'s pid of a running container (its entrypoint, as seen from here). */
  async pid(id: string): Promise<number> {
    const { stdout } = await this.#crunHere(["state", id], 10_000);
    return (JSON.parse(stdout) as { pid: number }).pid;
  }

  /** Runs `command` inside a running container (as its user, with its capabilities). */
  async exec(id: string, command: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await this.#crunHere(["exec", id, ...command], 20_000);
      return { code: 0, stdout, stderr };
    } catch (error) {
      const e = error as { code?: unknown; stdout?: string; stderr?: string };
      if (typeof e.code !== "number") throw error;
      return { code: e.code, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
    }
  }

  /**
   * Deletes every container started (`crun delete --force`, killing what still runs), then the bundles and unpacked
   * images; rejects, after removing them, when crun still lists a container.
   */
  async close(): Promise<void> {
    for (const id of this.#started) {
      await this.#crunHere(["delete", "--force", id], 20_000).catch(() => undefined);
    }
    const left = await this.#crunHere(["list", "--quiet"], 10_000).then(
      ({ stdout }) => stdout.split("\n").filter(Boolean),
      (error: unknown) => [`(crun list failed: ${String(error)})`],
    );
    await rm(this.#dir, { recursive: true, force: true });
    if (left.length > 0) throw new Error(`ImageRunner.close: containers left after crun delete --force: ${left.join(", ")}`);
  }
}
