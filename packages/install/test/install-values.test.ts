import { describe, expect, it } from "vitest";
import { identitiesFromValues, installWarnings, InstallOptionsError, parseInstallValues } from "../src/index";

const RID = "/subscriptions/0000/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id";
const CID = "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";

describe("v1.8 chart values", () => {
  it("reads the map form: key as the default name, empty namespace → the install namespace, binding in the identity's namespace", () => {
    const values = parseInstallValues(`azureIdentities:\n  "kv":\n    namespace: ""\n    type: 0\n    resourceID: ${RID}\n    clientID: ${CID}\n    binding:\n      selector: kv\n`);
    const [pair] = identitiesFromValues(values, "podidentity");
    expect(pair?.identity.metadata).toEqual({ name: "kv", namespace: "podidentity" });
    expect(pair?.binding.metadata).toEqual({ name: "kv-binding", namespace: "podidentity" });
    expect(pair?.binding.spec).toEqual({ azureIdentity: "kv", selector: "kv" });
  });

  it("reads the older list form and capitalised keys, written back canonical", () => {
    const values = parseInstallValues(`azureIdentities:\n  - name: kv\n    namespace: shop\n    Type: "0"\n    ResourceID: ${RID}\n    ClientID: ${CID}\n    Binding: { name: kv, Selector: web }\n`);
    const [pair] = identitiesFromValues(values, "kube-system");
    expect(pair?.identity.spec).toEqual({ type: 0, resourceID: RID, clientID: CID });
    expect(pair?.binding.spec).toEqual({ azureIdentity: "kv", selector: "web" });
  });

  it("maps operationMode, forceNamespaced (quoted, as the chart wrote it), mic.immutableUserMSIs and rbac.allowAccessToSecrets", () => {
    const { options } = parseInstallValues(`operationMode: managed\nforceNamespaced: "true"\nmic:\n  immutableUserMSIs: [${CID}]\nrbac:\n  allowAccessToSecrets: "false"\nimage:\n  repository: myregistry.azurecr.io/podidentity\n`);
    expect(options).toEqual({ mode: "managed", forceNamespaced: true, immutableUserMsis: [CID], allowAccessToSecrets: false, imageRegistry: "myregistry.azurecr.io/podidentity" });
  });

  it("refuses what MIC would refuse, naming the entry, and malformed settings", () => {
    expect(() => identitiesFromValues(parseInstallValues(`azureIdentities:\n  bad:\n    type: 0\n    resourceID: /not/a/resource/id\n    clientID: ${CID}\n    binding: { selector: x }\n`), "ns")).toThrow(
      /azureIdentities\.bad: spec\.resourceID/,
    );
    expect(() => parseInstallValues("azureIdentities:\n  nobinding:\n    type: 0\n")).toThrow(/azureIdentities\.nobinding\.binding is missing/);
    expect(() => parseInstallValues("forceNamespaced: maybe\n")).toThrow(InstallOptionsError);
    expect(() => parseInstallValues("operationMode: hybrid\n")).toThrow(/operationMode must be standard or managed/);
    expect(() => parseInstallValues("- a\n- b\n")).toThrow(/must be a YAML mapping/);
    expect(parseInstallValues("")).toEqual({ identities: [], options: {}, unmapped: [] });
  });

  it("warns about a binding naming an identity of another namespace, which never matches", () => {
    const values = parseInstallValues(`azureIdentities:\n  kv:\n    namespace: shop\n    type: 0\n    resourceID: ${RID}\n    clientID: ${CID}\n    binding: { name: kv, selector: kv, namespace: web }\n`);
    const warnings = installWarnings({ identities: identitiesFromValues(values, "kube-system") });
    expect(warnings).toEqual([expect.stringMatching(/^AzureIdentityBinding web\/kv names identity kv from namespace shop: .*selects nothing/)]);
  });
});
