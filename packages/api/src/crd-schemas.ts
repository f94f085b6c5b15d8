import type { JSONSchemaProps } from "./crd-types";
import {
  AZURE_ASSIGNED_IDENTITY_SPEC_SPELLINGS,
  AZURE_ASSIGNED_IDENTITY_STATUS_SPELLINGS,
  AZURE_IDENTITY_BINDING_SPEC_SPELLINGS,
  AZURE_IDENTITY_SPEC_SPELLINGS,
  AZURE_POD_IDENTITY_EXCEPTION_SPEC_SPELLINGS,
  AZURE_POD_IDENTITY_EXCEPTION_STATUS_SPELLINGS,
  REPLICA_STATUS_SPELLINGS,
  SECRET_REFERENCE_SPELLINGS,
  type KeySpellings,
} from "./legacy-keys";

/**
 * Structural OpenAPI v3 schemas for the four kinds: v1.8's fields, types and descriptions, plus every legacy
 * spelling from legacy-keys.ts declared beside its canonical field so the API server keeps it instead of
 * pruning it. Deliberately no enums, patterns or required fields: a manifest that applied under an older
 * release must still apply; what is wrong with it is reported by normalisation as a Warning event instead.
 */

const string = (description?: string): JSONSchemaProps => ({ type: "string", ...(description && { description }) });
const int32 = (description?: string, nullable = false): JSONSchemaProps => ({
  type: "integer",
  format: "int32",
  ...(nullable && { nullable: true }),
  ...(description && { description }),
});
/** v1.8 declared `metadata` inside spec and status (an artefact of its Go types); kept so nothing changes. */
const nestedMetadata: JSONSchemaProps = { type: "object" };

/** The canonical properties plus each legacy spelling, which gets the same schema and says what it stands for. */
function withSpellings(spellings: KeySpellings, canonical: Record<string, JSONSchemaProps>): Record<string, JSONSchemaProps> {
  const properties: Record<string, JSONSchemaProps> = {};
  for (const [name, schema] of Object.entries(canonical)) {
    properties[name] = schema;
    for (const legacy of spellings[name] ?? []) {
      properties[legacy] = { ...schema, description: `Legacy spelling of ${name}, read as ${name}. Prefer ${name}.` };
    }
  }
  return properties;
}

function object(description: string, properties: Record<string, JSONSchemaProps>): JSONSchemaProps {
  return { type: "object", description, properties };
}

const TYPE_META = {
  apiVersion: string("APIVersion defines the versioned schema of this representation of an object."),
  kind: string("Kind is a string value representing the REST resource this object represents."),
  metadata: { type: "object" } satisfies JSONSchemaProps,
};

function root(description: string, spec: JSONSchemaProps, status: JSONSchemaProps, legacyStatus = false): JSONSchemaProps {
  return {
    type: "object",
    description,
    properties: {
      ...TYPE_META,
      spec,
      status,
      // aad-pod-identity before 1.6 stored these kinds' status under `Status`; kept readable for adoption.
      ...(legacyStatus && { Status: { ...status, description: "Legacy spelling of status (before 1.6), read as status." } }),
    },
  };
}

function replicaStatus(description: string): JSONSchemaProps {
  return object(description, {
    ...withSpellings(REPLICA_STATUS_SPELLINGS, { availableReplicas: int32() }),
    metadata: nestedMetadata,
  });
}

const secretReference = object(
  "Reference to the Secret holding a service principal's credential (type 1: its first data value is the client secret; type 2: keys certificate and password).",
  withSpellings(SECRET_REFERENCE_SPELLINGS, {
    name: string("Name of the Secret."),
    namespace: string("Namespace of the Secret."),
  }),
);

export function azureIdentitySchema(): JSONSchemaProps {
  const spec = object("AzureIdentitySpec describes the credential specifications of an identity on Azure.", {
    ...withSpellings(AZURE_IDENTITY_SPEC_SPELLINGS, {
      type: {
        description: "0: user-assigned managed identity, 1: service principal with a secret, 2: service principal with a certificate. A number or a numeric string.",
        "x-kubernetes-int-or-string": true,
        anyOf: [{ type: "integer" }, { type: "string" }],
      },
      resourceID: string("Resource ID of the user-assigned identity (type 0)."),
      clientID: string("Client ID of the identity (all types)."),
      clientPassword: secretReference,
      tenantID: string("Primary tenant ID of the service principal (types 1 and 2)."),
      auxiliaryTenantIDs: {
        type: "array",
        nullable: true,
        items: { type: "string" },
        description: "Auxiliary tenant IDs of a multi-tenant service principal (type 1).",
      },
      adResourceID: string("Unused; kept from aad-pod-identity."),
      adEndpoint: string("Entra ID authority for types 1 and 2; default https://login.microsoftonline.com/."),
      replicas: int32("Unused; kept from aad-pod-identity.", true),
    }),
    metadata: nestedMetadata,
  });
  return root(
    "AzureIdentity describes an Azure identity pods may be given.",
    spec,
    replicaStatus("AzureIdentityStatus contains the replica status of the resource."),
  );
}

export function azureIdentityBindingSchema(): JSONSchemaProps {
  const spec = object("AzureIdentityBindingSpec binds pods labelled aadpodidbinding=<selector> to an AzureIdentity.", {
    ...withSpellings(AZURE_IDENTITY_BINDING_SPEC_SPELLINGS, {
      azureIdentity: string("Name of an AzureIdentity in this binding's namespace."),
      selector: string("Pods whose aadpodidbinding label equals this value are bound."),
      weight: { type: "integer", description: "Unused; kept from aad-pod-identity." },
    }),
    metadata: nestedMetadata,
  });
  return root(
    "AzureIdentityBinding brings together the spec of matching pods and the identity which they can use.",
    spec,
    replicaStatus("AzureIdentityBindingStatus contains the status of an AzureIdentityBinding."),
  );
}

export function azureAssignedIdentitySchema(): JSONSchemaProps {
  const embedded = (schema: JSONSchemaProps, description: string): JSONSchemaProps => ({
    ...schema,
    description,
    "x-kubernetes-embedded-resource": true,
  });
  const spec = object("AzureAssignedIdentitySpec records one pod's use of one identity through one binding.", {
    ...withSpellings(AZURE_ASSIGNED_IDENTITY_SPEC_SPELLINGS, {
      azureIdentityRef: embedded(azureIdentitySchema(), "The AzureIdentity as assigned (embedded; apiVersion and kind required)."),
      azureBindingRef: embedded(azureIdentityBindingSchema(), "The AzureIdentityBinding that matched (embedded; apiVersion and kind required)."),
      pod: string("Name of the pod."),
      podNamespace: string("Namespace of the pod."),
      nodename: string("Node the pod runs on."),
      replicas: int32(undefined, true),
    }),
    metadata: nestedMetadata,
  });
  const status = object("AzureAssignedIdentityStatus contains the assignment state.", {
    ...withSpellings(AZURE_ASSIGNED_IDENTITY_STATUS_SPELLINGS, {
      status: string("Created, Assigned or Unassigned; empty (objects from before 1.6) counts as Assigned."),
      availableReplicas: int32(),
    }),
    error: object(
      "Set by MIC while ARM refuses the assignment for a reason retrying alone will not fix (status stays Created); removed once it succeeds.",
      {
        code: string("ARM's error code, e.g. FailedIdentityOperation or LinkedAuthorizationFailed."),
        message: string("ARM's message (at most 1024 characters)."),
        lastTransitionTime: { type: "string", format: "date-time", description: "When MIC first saw this error." },
      },
    ),
    metadata: nestedMetadata,
  });
  return root("AzureAssignedIdentity contains the identity <-> pod mapping which is matched.", spec, status, true);
}

export function azurePodIdentityExceptionSchema(): JSONSchemaProps {
  const spec = object("AzurePodIdentityExceptionSpec exempts pods in this namespace carrying any of podLabels from NMI.", {
    ...withSpellings(AZURE_POD_IDENTITY_EXCEPTION_SPEC_SPELLINGS, {
      podLabels: { type: "object", additionalProperties: { type: "string" } },
    }),
    metadata: nestedMetadata,
  });
  const status = object("AzurePodIdentityExceptionStatus contains the status of an AzurePodIdentityException.", {
    ...withSpellings(AZURE_POD_IDENTITY_EXCEPTION_STATUS_SPELLINGS, { status: string() }),
    metadata: nestedMetadata,
  });
  return root(
    "AzurePodIdentityException lets matching pods reach IMDS without NMI processing their requests.",
    spec,
    status,
    true,
  );
}
