// The full demo as a user runs it (`pnpm demo` → node dist/demo.js): it enters a private network namespace by
// itself, builds the cluster, reads the secret through NMI, shows the denied request, and cleans up — or stops
// cleanly on Ctrl-C. Needs root (CI runs as root; with CI=true it runs rootless instead, as a user would).
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PROGRAMS } from "../src/cluster-options";
import { TEST_BUILD_DIR } from "./helpers/build-demo";

const canRun = process.geteuid?.() === 0 || process.env["CI"] === "true";
const demoJs = join(TEST_BUILD_DIR, "demo.js");

function startDemo(args: string[] = []): { child: ReturnType<typeof spawn>; output: () => string; result: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  // its own process group, as a terminal gives it: Ctrl-C reaches the whole group
  const child = spawn(process.execPath, [demoJs, ...args], { detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += String(d)));
  child.stderr.on("data", (d: Buffer) => (stderr += String(d)));
  const result = once(child, "close").then(([code]) => ({ code: code as number | null, stdout, stderr }));
  return { child, output: () => stdout, result };
}

describe.skipIf(!canRun)("the full demo (pnpm demo)", () => {
  it("reads the secret in a labelled pod through NMI, prints the timeline, the table and the refusal, and leaves nothing behind", async () => {
    const { code, stdout, stderr } = await startDemo().result;
    expect(stderr).toBe("");
    expect(code, stdout).toBe(0);
    for (const line of [
      /^ 1\. Enter a private network namespace \((as root|rootless: user \+ net \+ mount namespaces)\) \.+ +\d+\.\d\d s$/m,
      /nat {5}-A aad-metadata ! -s 127\.0\.0\.1\/32 -d 169\.254\.169\.254\/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10\.213\.0\.4:2579$/m,
      /filter {2}-A aad-metadata -p tcp -m tcp --dport 2579 -m conntrack --ctstate DNAT --ctorigdst 169\.254\.169\.254 --ctorigdstport 80 -j RETURN$/m,
      /filter {2}-A aad-metadata -p tcp -m tcp --dport 2579 -m comment --comment "podidentity: NMI answers only intercepted metadata traffic and 127\.0\.0\.1" -j REJECT --reject-with tcp-reset$/m,
      /filter {2}-A INPUT -j aad-metadata$/m,
      /node taints now: none \(NMI removed its startup taint once the rules were live\)/,
      /│ {3}ResourceID: \/subscriptions\/…\/keyvault-reader/,
      /│ {3}Selector: keyvault-secret/,
      /\+\d+\.\d\d s +pod Running: 10\.244\.0\.\d+ on aks-nodepool1-12345678-vmss000000/,
      /\+\d+\.\d\d s +AzureAssignedIdentity default\/keyvault-secret-7d9f8-default-keyvault-reader Created \(MIC\)/,
      /\+\d+\.\d\d s +Assigned \(MIC: 1 PATCH of scale set aks-nodepool1-12345678-vmss/,
      /\+\d+\.\d\d s +token: NMI answered 200 to 10\.244\.0\.\d+/,
      /\+\d+\.\d\d s +secret: db-password, version [0-9a-f]{32}, \d+ characters \(value not printed\)/,
      /^ +NAMESPACE +NAME +POD +NODE +STATE +AGE$/m,
      /^ +default +keyvault-secret-7d9f8-default-keyvault-reader +keyvault-secret-7d9f8 +aks-nodepool1-12345678-vmss000000 +Assigned +\d+s$/m,
      /10\.244\.0\.\d+ → HTTP 403 podidentity_no_binding: /,
      /^ 9\. Uninstall: delete NMI's DaemonSet, NMI removes its rules; everything stops \.+ +\d+\.\d\d s$/m,
      /NMI exited 0 on SIGTERM \(reason: daemonset-deleted\); aad-metadata rules on the node: present before, gone after/,
      /network namespaces left: 0/,
    ]) {
      expect(stdout).toMatch(line);
    }
    const done = /^Done in (\d+\.\d\d) s\.$/m.exec(stdout);
    expect(done, stdout).not.toBeNull();
    expect(Number(done![1])).toBeLessThan(60);
    expect(stdout).not.toMatch(/s3cr3t|eyJ/); // no secret value, no JWT
  }, 90_000);

  it("Ctrl-C stops NMI, MIC and the emulators and exits 0 (a stop that was asked for is no error for make or pnpm)", async () => {
    const demo = startDemo();
    await expect.poll(demo.output, { timeout: 30_000 }).toMatch(/^ 3\. /m);
    process.kill(-demo.child.pid!, "SIGINT");
    const { code, stdout, stderr } = await demo.result;
    expect(code).toBe(0);
    expect(stderr).toBe("");
    expect(stdout).toContain("SIGINT: stopping NMI (removes its iptables rules), MIC, the pods, nodes and emulators…");
    expect(stdout).toMatch(/^Stopped\.$/m);
    expect(stdout).not.toContain("Done in");
  }, 90_000);

  it("SIGTERM to the top process alone stops everything the same way", async () => {
    const demo = startDemo();
    await expect.poll(demo.output, { timeout: 30_000 }).toMatch(/^ 3\. /m);
    process.kill(demo.child.pid!, "SIGTERM");
    const { code, stdout, stderr } = await demo.result;
    expect(code).toBe(0);
    expect(stderr).toBe("");
    expect(stdout).toContain("SIGTERM: stopping NMI (removes its iptables rules), MIC, the pods, nodes and emulators…");
    expect(stdout).toMatch(/^Stopped\.$/m);
  }, 90_000);

  it("--keep leaves the cluster running, and `demo.js exec` runs one's own program in the bound pod as printed", async () => {
    const demo = startDemo(["--keep"]);
    try {
      await expect.poll(demo.output, { timeout: 60_000 }).toContain("Ctrl-C stops it.");
      const printed = /^ {2}(?:sudo env PATH="\$PATH" )?node packages\/e2e\/dist\/demo\.js exec -- (.+)$/m.exec(demo.output());
      expect(printed, demo.output()).not.toBeNull();
      expect(printed![1]).toBe('node "$PWD/packages/examples/dist/keyvault-secret.js"');
      // the printed command, from the repository root; the program is the unmodified example, run as one's own
      const exec = spawn(process.execPath, [demoJs, "exec", "--", process.execPath, PROGRAMS.keyvaultSecret()], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      let err = "";
      exec.stdout.on("data", (d: Buffer) => (out += String(d)));
      exec.stderr.on("data", (d: Buffer) => (err += String(d)));
      const [code] = (await once(exec, "close")) as [number];
      expect(code, `${out}\n${err}`).toBe(0);
      expect(out).toMatch(/^secret: db-password, version [0-9a-f]{32}, \d+ characters \(value not printed\)$/m);
      expect(out).toContain("credential: PodIdentityCredential (imds: http://169.254.169.254/)");

      const unknownPod = spawn(process.execPath, [demoJs, "exec", "--pod", "nope", "--", "true"], { stdio: ["ignore", "ignore", "pipe"] });
      let unknownErr = "";
      unknownPod.stderr.on("data", (d: Buffer) => (unknownErr += String(d)));
      expect((await once(unknownPod, "close"))[0]).toBe(1);
      expect(unknownErr).toContain('demo exec: no pod "nope"; the kept demo has keyvault-secret-7d9f8, no-identity-5c6b');
    } finally {
      process.kill(-demo.child.pid!, "SIGINT");
    }
    expect((await demo.result).code).toBe(0);
    // the state is gone with the demo: exec now says so
    const after = spawn(process.execPath, [demoJs, "exec", "--", "true"], { stdio: ["ignore", "ignore", "pipe"] });
    let afterErr = "";
    after.stderr.on("data", (d: Buffer) => (afterErr += String(d)));
    expect((await once(after, "close"))[0]).toBe(1);
    expect(afterErr).toContain("demo exec: no kept demo:");
  }, 150_000);
});
