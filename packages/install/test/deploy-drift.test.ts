import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { DEPLOY_FILES, deployFileHeader, RENDER_DEPLOY_COMMAND, renderInstallYaml, renderManifests } from "../src/index";
import { runCli } from "../src/cli";

const ROOT = resolve(import.meta.dirname, "../../..");
const body = (yaml: string): string => yaml.slice(yaml.indexOf("\n---\n"));

function cli(...argv: string[]): { code: number; stdout: string; stderr: string } {
  let stdout = "";
  let stderr = "";
  const code = runCli(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), readFile: (p) => readFileSync(p, "utf8") });
  return { code, stdout, stderr };
}

describe("checked-in deploy/ manifests", () => {
  for (const { path, options, command } of DEPLOY_FILES) {
    it(`${path} matches \`${command}\` (run \`${RENDER_DEPLOY_COMMAND}\` after changing the installer)`, () => {
      expect(readFileSync(resolve(ROOT, path), "utf8")).toBe(renderInstallYaml(options, deployFileHeader(command)));
    });

    it(`${path} is what the CLI prints for \`${command}\`, apart from the header`, () => {
      const r = cli(...command.split(" ").slice(1));
      expect(r.code, r.stderr).toBe(0);
      expect(body(r.stdout)).toBe(body(readFileSync(resolve(ROOT, path), "utf8")));
    });

    it(`${path} parses back into exactly renderManifests(), with no YAML aliases`, () => {
      const text = readFileSync(resolve(ROOT, path), "utf8");
      expect(text).not.toMatch(/[&*]a\d+/);
      const docs = parseAllDocuments(text).map((d) => d.toJS()).filter((d) => d !== null);
      expect(docs).toEqual(JSON.parse(JSON.stringify(renderManifests(options))));
    });
  }

  it("standard mode is the default: `render` with no flags prints deploy/podidentity-standard.yaml's objects", () => {
    const r = cli("render");
    expect(r.code).toBe(0);
    expect(body(r.stdout)).toBe(body(readFileSync(resolve(ROOT, "deploy/podidentity-standard.yaml"), "utf8")));
  });

  it("`render --crds` prints deploy/crds/crds.yaml", () => {
    const r = cli("render", "--crds");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(readFileSync(resolve(ROOT, "deploy/crds/crds.yaml"), "utf8"));
  });
});
