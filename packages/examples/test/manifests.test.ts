import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { formatProblems, matchPodIdentities, normalizeAzureIdentity, normalizeAzureIdentityBinding } from "@podidentity/api";

const MANIFESTS = join(import.meta.dirname, "..", "manifests");

/** The env vars each app refuses to start without. */
const REQUIRED_ENV = {
  "keyvault-secret": ["KEY_VAULT_URL", "SECRET_NAME"],
  "blob-storage": ["BLOB_ACCOUNT_URL"],
  "sql-query": ["SQL_SERVER", "SQL_DATABASE"],
} as const;

interface Deployment {
  kind: "Deployment";
  metadata: { name: string };
  spec: {
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string> }; spec: { containers: Array<{ command: string[]; env: Array<{ name: string }> }> } };
  };
}

describe.each(Object.keys(REQUIRED_ENV) as Array<keyof typeof REQUIRED_ENV>)("manifests/%s.yaml", (app) => {
  it("binds its AzureIdentity to the Deployment's pods by the aadpodidbinding label, in the pod's namespace", async () => {
    const docs = parseAllDocuments(await readFile(join(MANIFESTS, `${app}.yaml`), "utf8")).map((d) => d.toJS() as { kind: string });
    expect(docs.map((d) => d.kind)).toEqual(["AzureIdentity", "AzureIdentityBinding", "Deployment"]);

    const identity = normalizeAzureIdentity(docs[0]);
    const binding = normalizeAzureIdentityBinding(docs[1]);
    expect(formatProblems(identity.problems)).toBe("");
    expect(formatProblems(binding.problems)).toBe("");
    expect(identity.object.spec.type).toBe(0);

    const deployment = docs[2] as Deployment;
    const labels = deployment.spec.template.metadata.labels;
    expect(labels).toMatchObject(deployment.spec.selector.matchLabels);
    // Applied together with `kubectl apply -n <ns>`, all three land in one namespace: namespaced matching holds.
    const pod = { metadata: { name: `${app}-7d9c-abcde`, namespace: "apps", labels } };
    const inNamespace = <T extends { metadata?: object }>(o: T): T => ({ ...o, metadata: { ...o.metadata, namespace: "apps" } });
    const { matches } = matchPodIdentities(pod, [inNamespace(binding.object)], [inNamespace(identity.object)], { forceNamespaced: true });
    expect(matches.map((m) => m.identity.metadata?.name)).toEqual([identity.object.metadata?.name]);
  });

  it("runs the app's built entry point with every variable it requires", async () => {
    const docs = parseAllDocuments(await readFile(join(MANIFESTS, `${app}.yaml`), "utf8")).map((d) => d.toJS() as { kind: string });
    const container = (docs[2] as Deployment).spec.template.spec.containers[0]!;
    expect(container.command).toEqual(["node", `dist/${app}.js`]);
    expect(container.env.map((e) => e.name)).toEqual(expect.arrayContaining([...REQUIRED_ENV[app]]));
  });
});
