/**
 * The part of apiextensions.k8s.io/v1 CustomResourceDefinition our manifests use. Declared here rather than
 * imported so the package has no heavy runtime dependency; a test checks these objects are assignable to
 * kubernetes-models' ICustomResourceDefinition and pass its validator.
 */
export interface JSONSchemaProps {
  type?: "object" | "string" | "integer" | "number" | "boolean" | "array";
  description?: string;
  format?: string;
  nullable?: boolean;
  properties?: Record<string, JSONSchemaProps>;
  additionalProperties?: JSONSchemaProps;
  items?: JSONSchemaProps;
  anyOf?: JSONSchemaProps[];
  "x-kubernetes-int-or-string"?: true;
  "x-kubernetes-embedded-resource"?: true;
  "x-kubernetes-preserve-unknown-fields"?: true;
}

export interface CustomResourceColumnDefinition {
  name: string;
  type: "string" | "integer" | "number" | "boolean" | "date";
  jsonPath: string;
  description?: string;
  priority?: number;
}

export interface CustomResourceDefinitionVersion {
  name: string;
  served: boolean;
  storage: boolean;
  schema: { openAPIV3Schema: JSONSchemaProps };
  subresources?: { status?: Record<string, never> };
  additionalPrinterColumns?: CustomResourceColumnDefinition[];
}

export interface CustomResourceDefinitionNames {
  kind: string;
  listKind: string;
  plural: string;
  singular: string;
  shortNames?: string[];
  categories?: string[];
}

export interface CustomResourceDefinition {
  apiVersion: "apiextensions.k8s.io/v1";
  kind: "CustomResourceDefinition";
  metadata: { name: string; annotations?: Record<string, string>; labels?: Record<string, string> };
  spec: {
    group: string;
    names: CustomResourceDefinitionNames;
    scope: "Namespaced" | "Cluster";
    versions: CustomResourceDefinitionVersion[];
  };
}
