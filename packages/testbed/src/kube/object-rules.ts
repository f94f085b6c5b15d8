/**
 * What the API server does to an object between the request body and storage: type and identity checks
 * (kind/apiVersion/name/namespace against the URL), metadata validation, system fields (uid,
 * creationTimestamp, generation), status subresource separation, per-kind defaulting and validation, and the
 * structural pruning of custom resources. Pure functions over plain JSON; the REST layer calls them.
 */
import { randomInt, randomUUID } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import { decodeBuiltin, hasBuiltinSchema } from "./builtin-schemas";
import { validateCrd } from "./crd-registry";
import type { KubeObject, ObjectMeta, ResourceDef } from "./resources";
import { apiVersionOf, metaOf } from "./resources";
import { canonicalizePodSpecQuantities } from "./quantity";
import { applyDefaults, pruneObject, validateValue } from "./schema";
import { labelKeyError, labelValueError } from "./selectors";
import type { FieldError } from "./status-errors";
import { badRequest, conflict, invalid, KubeStatusError } from "./status-errors";

type Json = Record<string, unknown>;

export type FieldValidation = "Strict" | "Warn" | "Ignore";

export interface RuleContext {
  def: ResourceDef;
  nowIso: string;
  fieldValidation: FieldValidation;
  /** Warnings to return in `Warning` headers. */
  warnings: string[];
}

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;
const SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789";

export function formatTimestamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function nameErrors(def: ResourceDef, name: string): FieldError[] {
  if (def.group === "rbac.authorization.k8s.io") {
    if (name === "." || name === ".." || name.includes("/") || name.includes("%")) {
      return [{ type: "Invalid", field: "metadata.name", value: name, detail: "may not be '.' or '..' and may not contain '/' or '%'" }];
    }
    return [];
  }
  if (def.kind === "Namespace") {
    if (name.length > 63 || !DNS_LABEL.test(name)) {
      return [{ type: "Invalid", field: "metadata.name", value: name, detail: "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')" }];
    }
    return [];
  }
  if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    return [{ type: "Invalid", field: "metadata.name", value: name, detail: "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')" }];
  }
  return [];
}

/** 400 for bodies that would not even decode into the Go type (wrong JSON types in metadata). */
function checkDecodable(def: ResourceDef, body: Json): void {
  const fail = (what: string) => {
    throw badRequest(`${def.kind} in version "${def.version}" cannot be handled as a ${def.kind}: ${what}`);
  };
  const meta = body["metadata"];
  if (meta !== undefined && !isObject(meta)) fail("json: cannot unmarshal into Go struct field .metadata of type v1.ObjectMeta");
  if (!isObject(meta)) return;
  for (const field of ["labels", "annotations"] as const) {
    const m = meta[field];
    if (m === undefined || m === null) continue;
    if (!isObject(m) || Object.values(m).some((v) => typeof v !== "string")) {
      fail(`json: cannot unmarshal into Go struct field ObjectMeta.metadata.${field} of type map[string]string`);
    }
  }
  const fin = meta["finalizers"];
  if (fin !== undefined && fin !== null && (!Array.isArray(fin) || fin.some((f) => typeof f !== "string"))) {
    fail("json: cannot unmarshal into Go struct field ObjectMeta.metadata.finalizers of type []string");
  }
  for (const field of ["name", "namespace", "generateName", "resourceVersion", "uid"] as const) {
    if (meta[field] !== undefined && meta[field] !== null && typeof meta[field] !== "string") {
      fail(`json: cannot unmarshal into Go struct field ObjectMeta.metadata.${field} of type string`);
    }
  }
}

/**
 * kind and apiVersion of the body must name the resource of the URL. For built-in kinds kube-apiserver's typed decoder
 * defaults missing ones from the URL (and so does this check, filling them into the body); custom resources are
 * decoded unstructured, where both are required (measured against kube-apiserver 1.20 in test/real-kube).
 */
export function checkTypeMeta(def: ResourceDef, body: unknown): asserts body is Json {
  if (!isObject(body)) throw badRequest(`${def.kind} in version "${def.version}" cannot be handled as a ${def.kind}: the body must be a JSON object`);
  if (def.crdName === undefined) {
    if (body["kind"] === undefined || body["kind"] === "") body["kind"] = def.kind;
    if (body["apiVersion"] === undefined || body["apiVersion"] === "") body["apiVersion"] = apiVersionOf(def);
  }
  const kind = body["kind"];
  const apiVersion = body["apiVersion"];
  if (kind === undefined || kind === "") throw badRequest(`Object 'Kind' is missing in '${JSON.stringify(body).slice(0, 200)}'`);
  if (apiVersion === undefined || apiVersion === "") throw badRequest(`Object 'apiVersion' is missing in '${JSON.stringify(body).slice(0, 200)}'`);
  if (apiVersion !== apiVersionOf(def)) {
    throw badRequest(`the API version in the data (${String(apiVersion)}) does not match the expected API version (${apiVersionOf(def)})`);
  }
  if (kind !== def.kind) {
    throw badRequest(`${String(kind)} in version "${def.version}" cannot be handled as a ${def.kind}: the kind in the data (${String(kind)}) does not match the expected kind (${def.kind})`);
  }
  checkDecodable(def, body);
}

function metadataErrors(meta: ObjectMeta): FieldError[] {
  const errors: FieldError[] = [];
  for (const [k, v] of Object.entries(meta.labels ?? {})) {
    const ke = labelKeyError(k);
    if (ke) errors.push({ type: "Invalid", field: "metadata.labels", value: k, detail: ke });
    const ve = labelValueError(v);
    if (ve) errors.push({ type: "Invalid", field: "metadata.labels", value: v, detail: ve });
  }
  let annotationBytes = 0;
  for (const [k, v] of Object.entries(meta.annotations ?? {})) {
    const ke = labelKeyError(k.toLowerCase());
    if (ke) errors.push({ type: "Invalid", field: "metadata.annotations", value: k, detail: ke });
    annotationBytes += k.length + v.length;
  }
  if (annotationBytes > 256 * 1024) {
    errors.push({ type: "TooLong", field: "metadata.annotations", detail: "may not be more than 262144 bytes" });
  }
  return errors;
}

function throwIfInvalid(def: ResourceDef, name: string, errors: FieldError[]): void {
  if (errors.length) throw invalid(def.kind, def.group, name, errors);
}

function randomSuffix(): string {
  let s = "";
  for (let i = 0; i < 5; i++) s += SUFFIX_ALPHABET[randomInt(SUFFIX_ALPHABET.length)];
  return s;
}

/** Content of an object apart from metadata and status: what a change bumps metadata.generation for. */
function specContent(o: Json): Json {
  const { metadata: _m, status: _s, apiVersion: _a, kind: _k, ...rest } = o;
  return rest;
}

/** Prepares a POST body for storage (the caller checks existence, namespaces and stores it). */
export function prepareCreate(ctx: RuleContext, body: unknown, urlNamespace: string | undefined): KubeObject {
  const { def } = ctx;
  checkTypeMeta(def, body);
  const o = structuredClone(body);
  const schemaErrors = decodeBody(ctx, o);
  const meta = metaOf(o);
  if (def.namespaced) {
    if (meta.namespace && meta.namespace !== urlNamespace) {
      throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
    }
    meta.namespace = urlNamespace;
  } else {
    delete meta.namespace;
  }
  if (!meta.name) {
    if (!meta.generateName) {
      throw invalid(def.kind, def.group, "", [{ type: "Required", field: "metadata.name", detail: "name or generateName is required" }]);
    }
    meta.name = `${meta.generateName}${randomSuffix()}`;
  }
  const errors = [...nameErrors(def, meta.name), ...metadataErrors(meta)];
  throwIfInvalid(def, meta.name, errors);
  meta.uid = randomUUID();
  meta.creationTimestamp = ctx.nowIso;
  delete meta.deletionTimestamp;
  delete meta.deletionGracePeriodSeconds;
  delete meta.resourceVersion;
  delete meta.selfLink;
  if (def.generation) meta.generation = 1;
  else delete meta.generation;
  if (def.statusSubresource && def.kind !== "Node") delete o["status"];
  kindRulesOnWrite(ctx, o, undefined, schemaErrors);
  return o;
}

export interface UpdateRequest {
  /** The request's object (PUT body, or the existing object with the patch applied). */
  body: unknown;
  existing: KubeObject;
  subresource: "status" | undefined;
  urlName: string;
  urlNamespace: string | undefined;
  /** PATCH requests carry the current resourceVersion unless the patch names another one. */
  isPatch: boolean;
}

/** Prepares an update; returns undefined when nothing would change (the real server skips no-op writes). */
export function prepareUpdate(ctx: RuleContext, req: UpdateRequest): KubeObject | undefined {
  const { def } = ctx;
  checkTypeMeta(def, req.body);
  const body = structuredClone(req.body);
  const schemaErrors = decodeBody(ctx, body);
  const meta = metaOf(body);
  const old = req.existing;
  const oldMeta = metaOf(old);
  const gr = { group: def.group, resource: def.plural };
  if (meta.name !== req.urlName) {
    throw badRequest(`the name of the object (${meta.name ?? ""}) does not match the name on the URL (${req.urlName})`);
  }
  if (def.namespaced && meta.namespace && meta.namespace !== req.urlNamespace) {
    throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
  }
  if (meta.uid && meta.uid !== oldMeta.uid) {
    throw conflict(gr, req.urlName, `Precondition failed: UID in precondition: ${meta.uid}, UID in object meta: ${oldMeta.uid ?? ""}`);
  }
  if (!meta.resourceVersion) {
    if (!def.allowUnconditionalUpdate && !req.isPatch) {
      // kube-apiserver names the resource here, not the kind: `widgets.example.com "w" is invalid: …`
      throw invalid(def.plural, def.group, req.urlName, [{ type: "Invalid", field: "metadata.resourceVersion", value: "0x0", detail: "must be specified for an update" }]);
    }
  } else if (meta.resourceVersion !== oldMeta.resourceVersion) {
    throw conflict(gr, req.urlName);
  }

  let next: Json;
  if (req.subresource === "status") {
    // Writes through /status change only the status stanza; everything else keeps its stored value.
    next = structuredClone(old);
    if (body["status"] === undefined) delete next["status"];
    else next["status"] = body["status"];
  } else {
    next = body;
    if (def.statusSubresource) {
      // Writes to the main resource cannot change status when a status subresource exists.
      if (old["status"] === undefined) delete next["status"];
      else next["status"] = structuredClone(old["status"]);
    }
    const nextMeta = metaOf(next);
    nextMeta.namespace = oldMeta.namespace;
    if (!def.namespaced) delete nextMeta.namespace;
    nextMeta.uid = oldMeta.uid;
    nextMeta.creationTimestamp = oldMeta.creationTimestamp;
    if (oldMeta.deletionTimestamp) {
      nextMeta.deletionTimestamp = oldMeta.deletionTimestamp;
      nextMeta.deletionGracePeriodSeconds = oldMeta.deletionGracePeriodSeconds ?? 0;
    } else {
      delete nextMeta.deletionTimestamp;
      delete nextMeta.deletionGracePeriodSeconds;
    }
    delete nextMeta.selfLink;
    const errors = metadataErrors(nextMeta);
    if (oldMeta.deletionTimestamp) {
      const added = (nextMeta.finalizers ?? []).filter((f) => !(oldMeta.finalizers ?? []).includes(f));
      if (added.length) {
        errors.push({
          type: "Forbidden",
          field: "metadata.finalizers",
          detail: `no new finalizers can be added if the object is being deleted, found new finalizers []string{${added.map((f) => JSON.stringify(f)).join(", ")}}`,
        });
      }
    }
    throwIfInvalid(def, req.urlName, errors);
  }
  kindRulesOnWrite(ctx, next, old, req.subresource === "status" ? [] : schemaErrors);
  const nextMeta = metaOf(next);
  nextMeta.resourceVersion = oldMeta.resourceVersion;
  if (def.generation) {
    nextMeta.generation = oldMeta.generation ?? 1;
    if (!isDeepStrictEqual(specContent(next), specContent(old))) nextMeta.generation += 1;
  } else {
    delete nextMeta.generation;
  }
  next["apiVersion"] = old["apiVersion"];
  next["kind"] = old["kind"];
  if (isDeepStrictEqual(next, old)) return undefined;
  return next;
}

function decodeFail(def: ResourceDef, what: string): never {
  throw badRequest(`${def.kind} in version "${def.version}" cannot be handled as a ${def.kind}: ${what}`);
}

function checkConfigData(def: ResourceDef, o: Json, field: "data" | "binaryData" | "stringData", errors: FieldError[]): void {
  const data = o[field];
  if (data === undefined || data === null) return;
  if (!isObject(data)) decodeFail(def, `json: cannot unmarshal into Go struct field ${def.kind}.${field} of type map[string]`);
  for (const [k, v] of Object.entries(data)) {
    if (typeof v !== "string") decodeFail(def, `json: cannot unmarshal ${typeof v} into Go struct field ${def.kind}.${field} of type string`);
    if (!CONFIG_KEY.test(k) || k.length > 253) {
      errors.push({ type: "Invalid", field: `${field}[${k}]`, value: k, detail: "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')" });
    }
    if ((field === "data" && def.kind === "Secret") || field === "binaryData") {
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0) decodeFail(def, `illegal base64 data at input byte ${Math.max(0, v.search(/[^A-Za-z0-9+/=]/))}`);
    }
  }
}

const POD_MUTABLE_SPEC = ["activeDeadlineSeconds", "terminationGracePeriodSeconds", "tolerations"];

function podSpecForComparison(spec: unknown): unknown {
  if (!isObject(spec)) return spec;
  const copy = structuredClone(spec);
  for (const k of POD_MUTABLE_SPEC) delete copy[k];
  for (const list of ["containers", "initContainers"]) {
    const cs = copy[list];
    if (Array.isArray(cs)) for (const c of cs) if (isObject(c)) delete c["image"];
  }
  return copy;
}

/** Where a built-in object keeps a pod spec: a Pod's own, a workload's template, a CronJob's job template's. */
function podSpecOf(def: RuleContext["def"], o: Json): { spec: Json; path: string } | undefined {
  if (def.schema) return undefined;
  const at = (path: string[]): Json | undefined => {
    let v: unknown = o;
    for (const k of path) v = isObject(v) ? v[k] : undefined;
    return isObject(v) ? v : undefined;
  };
  const paths: string[][] = [];
  if (def.group === "" && def.kind === "Pod") paths.push(["spec"]);
  if ((def.group === "" && def.kind === "ReplicationController") || (def.group === "apps" && ["Deployment", "DaemonSet", "StatefulSet", "ReplicaSet"].includes(def.kind)) || (def.group === "batch" && def.kind === "Job")) {
    paths.push(["spec", "template", "spec"]);
  }
  if (def.group === "batch" && def.kind === "CronJob") paths.push(["spec", "jobTemplate", "spec", "template", "spec"]);
  for (const path of paths) {
    const spec = at(path);
    if (spec) return { spec, path: path.join(".") };
  }
  return undefined;
}

function defaultPod(o: Json): void {
  const spec = o["spec"] as Json;
  defaultPodSpec(spec);
  // Set for pods only: the ServiceAccount and Priority admission plugins and SetDefaults_Pod, not the pod spec defaults.
  spec["serviceAccountName"] ??= "default";
  spec["serviceAccount"] ??= spec["serviceAccountName"];
  spec["enableServiceLinks"] ??= true;
  spec["priority"] ??= 0;
}

/** SetDefaults_PodSpec and SetDefaults_Container: applied to pods and to the pod templates of workloads. */
function defaultPodSpec(spec: Json): void {
  spec["restartPolicy"] ??= "Always";
  spec["dnsPolicy"] ??= "ClusterFirst";
  spec["schedulerName"] ??= "default-scheduler";
  spec["terminationGracePeriodSeconds"] ??= 30;
  spec["securityContext"] ??= {};
  for (const list of ["containers", "initContainers"]) {
    const cs = spec[list];
    if (!Array.isArray(cs)) continue;
    for (const c of cs) {
      if (!isObject(c)) continue;
      const image = typeof c["image"] === "string" ? c["image"] : "";
      const tag = image.includes("@") ? "digest" : (/:([^/:]+)$/.exec(image)?.[1] ?? "latest");
      c["imagePullPolicy"] ??= tag === "latest" ? "Always" : "IfNotPresent";
      c["terminationMessagePath"] ??= "/dev/termination-log";
      c["terminationMessagePolicy"] ??= "File";
      c["resources"] ??= {};
      if (Array.isArray(c["ports"])) for (const p of c["ports"]) if (isObject(p)) p["protocol"] ??= "TCP";
    }
  }
}

/** SetDefaults_Deployment / SetDefaults_DaemonSet (apps/v1) and the pod template's spec defaults. */
function defaultWorkload(def: ResourceDef, o: Json): void {
  const spec = o["spec"];
  if (!isObject(spec)) return;
  const template = spec["template"];
  if (isObject(template) && isObject(template["spec"])) defaultPodSpec(template["spec"]);
  spec["revisionHistoryLimit"] ??= 10;
  if (def.kind === "Deployment") {
    spec["replicas"] ??= 1;
    spec["progressDeadlineSeconds"] ??= 600;
    const strategy = isObject(spec["strategy"]) ? spec["strategy"] : {};
    strategy["type"] ??= "RollingUpdate";
    if (strategy["type"] === "RollingUpdate") {
      const ru = isObject(strategy["rollingUpdate"]) ? strategy["rollingUpdate"] : {};
      ru["maxUnavailable"] ??= "25%";
      ru["maxSurge"] ??= "25%";
      strategy["rollingUpdate"] = ru;
    }
    spec["strategy"] = strategy;
  } else {
    const strategy = isObject(spec["updateStrategy"]) ? spec["updateStrategy"] : {};
    strategy["type"] ??= "RollingUpdate";
    if (strategy["type"] === "RollingUpdate") {
      const ru = isObject(strategy["rollingUpdate"]) ? strategy["rollingUpdate"] : {};
      ru["maxUnavailable"] ??= 1;
      ru["maxSurge"] ??= 0;
      strategy["rollingUpdate"] = ru;
    }
    spec["updateStrategy"] = strategy;
  }
}

/** ValidateDeploymentSpec / ValidateDaemonSetSpec: a selector is required and must select the template's labels. */
function validateWorkloadSelector(kind: string, o: Json, errors: FieldError[]): void {
  const spec = isObject(o["spec"]) ? o["spec"] : {};
  const selector = spec["selector"];
  const template = isObject(spec["template"]) ? spec["template"] : {};
  const labels = (isObject(template["metadata"]) ? template["metadata"]["labels"] : undefined) as Record<string, string> | undefined;
  if (!isObject(selector)) {
    if (!errors.some((e) => e.field === "spec.selector")) errors.push({ type: "Required", field: "spec.selector" });
  } else {
    const matchLabels = isObject(selector["matchLabels"]) ? selector["matchLabels"] : {};
    const expressions = Array.isArray(selector["matchExpressions"]) ? selector["matchExpressions"] : [];
    if (Object.keys(matchLabels).length === 0 && expressions.length === 0) {
      errors.push({ type: "Invalid", field: "spec.selector", value: selector, valueText: goLabelSelector(selector), detail: `empty selector is invalid for ${kind.toLowerCase()}` });
      return;
    }
    if (labelSelectorMatches(selector, labels ?? {})) return;
  }
  errors.push({ type: "Invalid", field: "spec.template.metadata.labels", value: labels ?? null, valueText: goStringMap(labels), detail: "`selector` does not match template `labels`" });
}

/** A label map as Go's %#v prints it in validation messages: map[string]string{"app":"x"}. */
function goStringMap(m: Record<string, string> | undefined): string {
  if (m === undefined) return "map[string]string(nil)";
  const keys = Object.keys(m).sort();
  return `map[string]string{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(m[k])}`).join(", ")}}`;
}

function goLabelSelector(s: Json): string {
  const ml = isObject(s["matchLabels"]) ? goStringMap(s["matchLabels"] as Record<string, string>) : "map[string]string(nil)";
  return `v1.LabelSelector{MatchLabels:${ml}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}`;
}

/** metav1.LabelSelector semantics: every matchLabels pair and every matchExpressions requirement holds. */
function labelSelectorMatches(selector: Json, labels: Record<string, string>): boolean {
  const matchLabels = isObject(selector["matchLabels"]) ? selector["matchLabels"] : {};
  for (const [k, v] of Object.entries(matchLabels)) if (labels[k] !== v) return false;
  const expressions = Array.isArray(selector["matchExpressions"]) ? selector["matchExpressions"] : [];
  for (const e of expressions) {
    if (!isObject(e)) return false;
    const key = String(e["key"]);
    const values = Array.isArray(e["values"]) ? e["values"].map(String) : [];
    const has = Object.hasOwn(labels, key);
    switch (e["operator"]) {
      case "In":
        if (!has || !values.includes(labels[key] as string)) return false;
        break;
      case "NotIn":
        if (has && values.includes(labels[key] as string)) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

/** SetDefaults_Subject (rbac/v1): apiGroup follows the subject's kind. */
function defaultRbacSubjects(o: Json): void {
  if (!Array.isArray(o["subjects"])) return;
  for (const s of o["subjects"]) {
    if (!isObject(s) || (s["apiGroup"] !== undefined && s["apiGroup"] !== "")) continue;
    if (s["kind"] === "User" || s["kind"] === "Group") s["apiGroup"] = "rbac.authorization.k8s.io";
    // A ServiceAccount's apiGroup stays "", which the API's JSON omits (omitempty): a client that sent none gets none back.
    else if (s["kind"] === "ServiceAccount") delete s["apiGroup"];
  }
}

/** SetDefaults_Service's port defaults. */
function defaultServicePorts(o: Json): void {
  const spec = o["spec"];
  if (!isObject(spec) || !Array.isArray(spec["ports"])) return;
  for (const p of spec["ports"]) {
    if (!isObject(p)) continue;
    p["protocol"] ??= "TCP";
    p["targetPort"] ??= p["port"];
  }
}

function validatePod(o: Json, errors: FieldError[]): void {
  const spec = o["spec"];
  if (!isObject(spec)) {
    errors.push({ type: "Required", field: "spec.containers" });
    return;
  }
  const containers = spec["containers"];
  if (!Array.isArray(containers) || containers.length === 0) {
    errors.push({ type: "Required", field: "spec.containers" });
    return;
  }
  const seen = new Set<string>();
  containers.forEach((c, i) => {
    const name = isObject(c) ? c["name"] : undefined;
    if (typeof name !== "string" || name === "") errors.push({ type: "Required", field: `spec.containers[${i}].name` });
    else if (seen.has(name)) errors.push({ type: "Duplicate", field: `spec.containers[${i}].name`, value: name });
    else seen.add(name);
    const image = isObject(c) ? c["image"] : undefined;
    if (typeof image !== "string" || image.trim() === "") errors.push({ type: "Required", field: `spec.containers[${i}].image` });
  });
}

/**
 * The typed decode of a built-in body (builtin-schemas.ts): 400 for wrongly typed fields, undeclared fields
 * dropped (warned about or refused by fieldValidation). Returns the schema's enum/required problems for the 422.
 */
function decodeBody(ctx: RuleContext, body: Json): FieldError[] {
  if (!hasBuiltinSchema(ctx.def)) return [];
  const { unknownFields, fieldErrors } = decodeBuiltin(ctx.def, body);
  reportUnknownFields(ctx, unknownFields);
  return fieldErrors;
}

/** fieldValidation: Strict refuses undeclared fields (400), Warn (the default) names each in a Warning, Ignore drops them silently. */
function reportUnknownFields(ctx: RuleContext, unknown: string[]): void {
  if (!unknown.length) return;
  if (ctx.fieldValidation === "Strict") {
    throw new KubeStatusError(
      400,
      "BadRequest",
      `${ctx.def.kind} in version "${ctx.def.version}" cannot be handled as a ${ctx.def.kind}: strict decoding error: ${unknown.map((u) => `unknown field "${u}"`).join(", ")}`,
    );
  }
  if (ctx.fieldValidation === "Warn") ctx.warnings.push(...unknown.map((u) => `unknown field "${u}"`));
}

/** Per-kind defaulting and validation on create (`old` undefined) and update. */
function kindRulesOnWrite(ctx: RuleContext, o: Json, old: Json | undefined, schemaErrors: FieldError[] = []): void {
  const { def } = ctx;
  const name = metaOf(o).name ?? "";
  const errors: FieldError[] = [...schemaErrors];
  const podSpec = podSpecOf(def, o);
  if (podSpec) {
    for (const p of canonicalizePodSpecQuantities(podSpec.spec, podSpec.path)) errors.push({ type: "Invalid", field: p.field, value: p.value, detail: p.message });
  }
  if (def.schema) {
    customResourceRules(ctx, o, errors);
  } else if (def.group === "" && def.kind === "Pod") {
    validatePod(o, errors);
    if (!errors.length) defaultPod(o);
    if (old && !errors.length && !isDeepStrictEqual(podSpecForComparison(o["spec"]), podSpecForComparison(old["spec"]))) {
      errors.push({ type: "Forbidden", field: "spec", detail: "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)" });
    }
    if (!old) o["status"] = { phase: "Pending" };
  } else if (def.group === "" && (def.kind === "Secret" || def.kind === "ConfigMap")) {
    checkConfigData(def, o, "data", errors);
    checkConfigData(def, o, def.kind === "Secret" ? "stringData" : "binaryData", errors);
    if (def.kind === "Secret") {
      const stringData = o["stringData"];
      if (isObject(stringData)) {
        const data = isObject(o["data"]) ? o["data"] : {};
        for (const [k, v] of Object.entries(stringData)) data[k] = Buffer.from(String(v), "utf8").toString("base64");
        o["data"] = data;
      }
      delete o["stringData"];
      o["type"] ??= "Opaque";
      if (old && o["type"] !== old["type"]) errors.push({ type: "Invalid", field: "type", value: o["type"], detail: "field is immutable" });
    }
    if (old && old["immutable"] === true) {
      for (const f of ["data", "binaryData"]) {
        if (!isDeepStrictEqual(o[f], old[f])) errors.push({ type: "Forbidden", field: f, detail: "field is immutable when `immutable` is set" });
      }
      if (o["immutable"] !== true) errors.push({ type: "Forbidden", field: "immutable", detail: "field is immutable when `immutable` is set" });
    }
  } else if (def.group === "apps" && (def.kind === "Deployment" || def.kind === "DaemonSet")) {
    validateWorkloadSelector(def.kind, o, errors);
    defaultWorkload(def, o);
  } else if (def.group === "rbac.authorization.k8s.io" && (def.kind === "RoleBinding" || def.kind === "ClusterRoleBinding")) {
    defaultRbacSubjects(o);
  } else if (def.group === "" && def.kind === "Service") {
    defaultServicePorts(o);
  } else if (def.group === "" && def.kind === "Namespace") {
    const meta = metaOf(o);
    meta.labels = { ...(meta.labels ?? {}), "kubernetes.io/metadata.name": name };
    if (!old) {
      o["spec"] = { finalizers: ["kubernetes"], ...(isObject(o["spec"]) ? o["spec"] : {}) };
      o["status"] = { phase: "Active" };
    }
  } else if (def.group === "apiextensions.k8s.io" && def.kind === "CustomResourceDefinition") {
    errors.push(...validateCrd(o));
    if (old && !errors.length) {
      const group = (o["spec"] as Json)["group"];
      const oldGroup = (old["spec"] as Json)["group"];
      if (group !== oldGroup) errors.push({ type: "Invalid", field: "spec.group", value: group, detail: "field is immutable" });
    }
  } else if (def.group === "coordination.k8s.io" && def.kind === "Lease") {
    const spec = o["spec"];
    const duration = isObject(spec) ? spec["leaseDurationSeconds"] : undefined;
    if (duration !== undefined && duration !== null && (typeof duration !== "number" || !Number.isInteger(duration))) {
      decodeFail(def, "json: cannot unmarshal into Go struct field LeaseSpec.spec.leaseDurationSeconds of type int32");
    }
    if (typeof duration === "number" && duration <= 0) {
      errors.push({ type: "Invalid", field: "spec.leaseDurationSeconds", value: duration, detail: "must be greater than 0" });
    }
  }
  throwIfInvalid(def, name, errors);
}

/** Structural schema rules of custom resources: prune unknown fields, default, validate. */
function customResourceRules(ctx: RuleContext, o: Json, errors: FieldError[]): void {
  const schema = ctx.def.schema;
  if (!schema) return;
  reportUnknownFields(ctx, pruneObject(o, schema));
  applyDefaults(o, schema);
  validateValue(o, schema, "", errors);
}
