/** A small CRD in aad-pod-identity's shape, with the capitalised legacy keys declared. */
export function azureIdentityCrd(extra: { printerColumns?: boolean } = {}) {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    // *.k8s.io is a protected group: the API server requires this annotation (aad-pod-identity's CRDs carry it).
    metadata: { name: "azureidentities.aadpodidentity.k8s.io", annotations: { "api-approved.kubernetes.io": "unapproved" } },
    spec: {
      group: "aadpodidentity.k8s.io",
      scope: "Namespaced",
      names: { plural: "azureidentities", singular: "azureidentity", kind: "AzureIdentity", listKind: "AzureIdentityList", shortNames: ["azid"] },
      versions: [
        {
          name: "v1",
          served: true,
          storage: true,
          subresources: { status: {} },
          ...(extra.printerColumns
            ? { additionalPrinterColumns: [{ name: "Type", type: "integer", jsonPath: ".spec.type" }, { name: "ClientID", type: "string", jsonPath: ".spec.clientID" }, { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" }] }
            : {}),
          schema: {
            openAPIV3Schema: {
              type: "object",
              properties: {
                apiVersion: { type: "string" },
                kind: { type: "string" },
                metadata: { type: "object" },
                spec: {
                  type: "object",
                  properties: {
                    type: { type: "integer", enum: [0, 1, 2] },
                    resourceID: { type: "string" },
                    clientID: { type: "string" },
                    ResourceID: { type: "string" },
                    ClientID: { type: "string" },
                    replicas: { type: "integer", default: 1 },
                  },
                },
                status: { type: "object", properties: { state: { type: "string" } } },
              },
            },
          },
        },
      ],
    },
  };
}

export const CRD_URL = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
export const AZID_URL = "/apis/aadpodidentity.k8s.io/v1/namespaces/default/azureidentities";

export function azureIdentity(name: string, spec: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { apiVersion: "aadpodidentity.k8s.io/v1", kind: "AzureIdentity", metadata: { name }, spec, ...extra };
}
