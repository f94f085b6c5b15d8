import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { customResourceDefinitions, RENDER_CRDS_COMMAND, renderCrdsYaml } from "../src/index";

const CHECKED_IN = resolve(import.meta.dirname, "../../../deploy/crds/crds.yaml");

describe("deploy/crds/crds.yaml", () => {
  it(`matches the rendered CRDs (run \`${RENDER_CRDS_COMMAND}\` after changing them)`, () => {
    expect(readFileSync(CHECKED_IN, "utf8")).toBe(renderCrdsYaml());
  });

  it("parses back into exactly customResourceDefinitions(), with no YAML aliases", () => {
    const yaml = renderCrdsYaml();
    expect(yaml.startsWith("# ")).toBe(true);
    expect(yaml).not.toMatch(/[&*]a\d+/);
    const docs = parseAllDocuments(yaml).map((d) => d.toJS()).filter((d) => d !== null);
    expect(docs).toEqual(customResourceDefinitions());
  });
});
