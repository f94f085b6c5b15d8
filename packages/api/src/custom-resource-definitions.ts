import {
  azureAssignedIdentitySchema,
  azureIdentityBindingSchema,
  azureIdentitySchema,
  azurePodIdentityExceptionSchema,
} from "./crd-schemas";
import type { CustomResourceColumnDefinition, CustomResourceDefinition, JSONSchemaProps } from "./crd-types";
import { API_GROUP, API_VERSION } from "./names";
import {
  AZURE_ASSIGNED_IDENTITY_NAMES,
  AZURE_IDENTITY_BINDING_NAMES,
  AZURE_IDENTITY_NAMES,
  AZURE_POD_IDENTITY_EXCEPTION_NAMES,
  type ResourceKindNames,
} from "./resource-kinds";

/**
 * Groups under `k8s.io` need this annotation or the API server refuses the CRD (KEP-1111). v1.8 used the
 * value `unapproved`; we keep it so applying over an existing installation changes nothing here.
 */
export const CRD_ANNOTATIONS: Readonly<Record<string, string>> = { "api-approved.kubernetes.io": "unapproved" };

export const CRD_LABELS: Readonly<Record<string, string>> = { "app.kubernetes.io/part-of": "podidentity" };

/** `<plural>.aadpodidentity.k8s.io`, v1.8's CRD names, so installations migrate in place. */
export function crdName(names: ResourceKindNames): string {
  return `${names.plural}.${API_GROUP}`;
}

const AGE: CustomResourceColumnDefinition = {
  name: "Age",
  type: "date",
  jsonPath: ".metadata.creationTimestamp",
  description: "Time since the object was created.",
};

interface KindDefinition {
  names: ResourceKindNames;
  schema: JSONSchemaProps;
  columns: CustomResourceColumnDefinition[];
  /**
   * The `/status` subresource splits who writes what: users apply spec, MIC writes status, and neither
   * clobbers the other. AzureAssignedIdentity is the exception: MIC owns spec and status alike, and it must be
   * created already `Created` in one request — with the subresource, the API server would drop the status on
   * create, leaving an empty status, which v1.8's rule (and NMI's) reads as "Assigned" before anything is.
   */
  statusSubresource: boolean;
}

function definitions(): KindDefinition[] {
  return [
    {
      names: AZURE_IDENTITY_NAMES,
      schema: azureIdentitySchema(),
      // v1.8's columns, verbatim (Type is an integer shown as a string).
      columns: [
        { name: "Type", type: "string", jsonPath: ".spec.type" },
        { name: "ClientID", type: "string", jsonPath: ".spec.clientID" },
        AGE,
      ],
      statusSubresource: true,
    },
    {
      names: AZURE_IDENTITY_BINDING_NAMES,
      schema: azureIdentityBindingSchema(),
      // v1.8's columns, verbatim.
      columns: [
        { name: "AzureIdentity", type: "string", jsonPath: ".spec.azureIdentity" },
        { name: "Selector", type: "string", jsonPath: ".spec.selector" },
        AGE,
      ],
      statusSubresource: true,
    },
    {
      names: AZURE_ASSIGNED_IDENTITY_NAMES,
      schema: azureAssignedIdentitySchema(),
      // v1.8 had none; these answer "is my pod's identity assigned yet?" at a glance.
      columns: [
        { name: "Pod", type: "string", jsonPath: ".spec.pod" },
        { name: "PodNamespace", type: "string", jsonPath: ".spec.podNamespace", priority: 1 },
        { name: "Identity", type: "string", jsonPath: ".spec.azureIdentityRef.metadata.name", priority: 1 },
        { name: "Node", type: "string", jsonPath: ".spec.nodename" },
        { name: "State", type: "string", jsonPath: ".status.status" },
        AGE,
      ],
      statusSubresource: false,
    },
    {
      names: AZURE_POD_IDENTITY_EXCEPTION_NAMES,
      schema: azurePodIdentityExceptionSchema(),
      columns: [AGE],
      statusSubresource: true,
    },
  ];
}

/**
 * The four apiextensions.k8s.io/v1 CRDs: group aadpodidentity.k8s.io, version v1 served and stored,
 * namespaced, with structural schemas that keep every legacy spelling. Fresh objects on each call.
 */
export function customResourceDefinitions(): CustomResourceDefinition[] {
  return definitions().map(({ names, schema, columns, statusSubresource }) => ({
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: crdName(names), annotations: { ...CRD_ANNOTATIONS }, labels: { ...CRD_LABELS } },
    spec: {
      group: API_GROUP,
      names: { kind: names.kind, listKind: names.listKind, plural: names.plural, singular: names.singular },
      scope: "Namespaced",
      versions: [
        {
          name: API_VERSION,
          served: true,
          storage: true,
          // structuredClone: the schema builders share sub-schemas, and callers may edit what we return.
          schema: { openAPIV3Schema: structuredClone(schema) },
          ...(statusSubresource && { subresources: { status: {} } }),
          additionalPrinterColumns: columns.map((c) => ({ ...c })),
        },
      ],
    },
  }));
}
