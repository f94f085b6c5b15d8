/**
 * The HTTP side of resource requests: decodes query and body, calls the REST operations, and writes the
 * response — JSON objects and lists, Tables for kubectl, or a watch stream.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { parseWriteOptions, readJsonBody, readRawBody, readYamlBody, sendJson } from "./http-io";
import type { KubeVerb } from "./faults";
import { parseListOptions } from "./list-options";
import type { ResourceOperations } from "./resource-operations";
import type { KubeObject } from "./resources";
import { metaOf } from "./resources";
import type { ResourceRoute } from "./router";
import type { Store } from "./store";
import { badRequest, methodNotAllowed } from "./status-errors";
import { toTable, wantsTable } from "./table";
import { WatchSession } from "./watch";
import { answerReview } from "./access-reviews";
import { decodeReviewProtobuf, KUBERNETES_PROTOBUF } from "./review-protobuf";
import { getScale, writeScale } from "./scale-subresource";
import { managerOf } from "./managed-fields";
import { PATCH_CONTENT_TYPES } from "./patch";
import type { WriteOptions } from "./resource-operations";

/** dryRun/fieldValidation, plus who writes (for managedFields) and whether an apply forces. */
function writeOptions(q: URLSearchParams, req: IncomingMessage): WriteOptions {
  const fieldManager = q.get("fieldManager");
  return { ...parseWriteOptions(q), manager: managerOf(fieldManager, req.headers["user-agent"]), fieldManagerGiven: Boolean(fieldManager), force: q.get("force") === "true" };
}

export interface ResourceHandlerContext {
  ops: ResourceOperations;
  store: Store;
  watches: Set<WatchSession>;
  nowMs: () => number;
  maxRequestBodyBytes: number;
  defaultWatchTimeoutSeconds: number;
  watchBookmarkIntervalMs: number;
  /** The authenticated user of the request, and the name unauthenticated requests get (reviews answer from them). */
  user: string;
  anonymousUser: string;
}

export async function handleResourceRequest(ctx: ResourceHandlerContext, req: IncomingMessage, res: ServerResponse, url: URL, route: ResourceRoute, verb: KubeVerb): Promise<void> {
  const { def, namespace, name, subresource } = route;
  const { ops } = ctx;
  const q = url.searchParams;
  const limit = ctx.maxRequestBodyBytes;
  if (def.review) {
    const protobuf = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() === KUBERNETES_PROTOBUF;
    const body = protobuf ? decodeReviewProtobuf(await readRawBody(req, limit)) : await readJsonBody(req, limit, true, true);
    sendJson(res, 201, answerReview(def, body, ctx.user, ctx.anonymousUser));
    return;
  }
  if (subresource === "scale") {
    if (verb === "get") sendJson(res, 200, getScale(ops, def, namespace, name as string));
    else if (verb === "update" || verb === "patch") {
      const contentType = verb === "patch" ? (req.headers["content-type"] ?? "") : undefined;
      const body = await readJsonBody(req, limit, true, verb === "update");
      const r = writeScale(ops, def, namespace, name as string, contentType, body, parseWriteOptions(q));
      sendJson(res, r.code, r.object, r.warnings);
    } else throw methodNotAllowed();
    return;
  }
  switch (verb) {
    case "get": {
      const obj = ops.get(def, namespace, name as string);
      if (wantsTable(req.headers.accept)) {
        sendJson(res, 200, toTable(def, [obj], { resourceVersion: metaOf(obj).resourceVersion }, ctx.nowMs(), q.get("includeObject")));
      } else {
        sendJson(res, 200, obj);
      }
      return;
    }
    case "list": {
      const list = ops.list(def, namespace, parseListOptions(def, q, false));
      if (wantsTable(req.headers.accept)) {
        const items = (list["items"] as KubeObject[]).map((o) => ops.present(def, o));
        sendJson(res, 200, toTable(def, items, list["metadata"] as Record<string, unknown>, ctx.nowMs(), q.get("includeObject")));
      } else {
        sendJson(res, 200, list);
      }
      return;
    }
    case "watch": {
      const options = parseListOptions(def, q, true);
      // timeoutSeconds=0 means "server default", as in kube-apiserver.
      const timeoutSeconds = options.timeoutSeconds || ctx.defaultWatchTimeoutSeconds;
      // `kubectl get -w` asks for Tables: each event carries a one-row Table, column definitions only in the first.
      let headers = true;
      const present = wantsTable(req.headers.accept)
        ? (o: KubeObject) => {
            const table = toTable(def, [ops.present(def, o)], { resourceVersion: metaOf(o).resourceVersion }, ctx.nowMs(), q.get("includeObject"));
            if (!headers) table["columnDefinitions"] = [];
            headers = false;
            return table;
          }
        : (o: KubeObject) => ops.present(def, o);
      const session = new WatchSession(ctx.store, res, {
        def,
        namespace,
        options,
        timeoutMs: timeoutSeconds * 1000,
        bookmarkIntervalMs: ctx.watchBookmarkIntervalMs,
        present,
        onClose: (s) => ctx.watches.delete(s),
      });
      ctx.watches.add(session);
      session.start();
      return;
    }
    case "create": {
      const body = await readJsonBody(req, limit, true, true);
      const r = ops.create(def, namespace, body, writeOptions(q, req));
      sendJson(res, r.code, r.object, r.warnings);
      return;
    }
    case "update": {
      const body = await readJsonBody(req, limit, true, true);
      const r = ops.update(def, namespace, name as string, subresource, body, writeOptions(q, req));
      sendJson(res, r.code, r.object, r.warnings);
      return;
    }
    case "patch": {
      const contentType = req.headers["content-type"] ?? "";
      const apply = (contentType.split(";")[0] ?? "").trim().toLowerCase() === PATCH_CONTENT_TYPES.apply;
      const body = apply ? await readYamlBody(req, limit) : await readJsonBody(req, limit, true, false);
      const r = ops.patch(def, namespace, name as string, subresource, contentType, body, writeOptions(q, req));
      sendJson(res, r.code, r.object, r.warnings);
      return;
    }
    case "delete": {
      const body = (await readJsonBody(req, limit, false, true)) ?? {};
      if (typeof body !== "object" || body === null || Array.isArray(body)) throw badRequest("DeleteOptions must be a JSON object");
      const options = { ...(body as Record<string, unknown>) };
      const policy = q.get("propagationPolicy");
      if (policy) options["propagationPolicy"] = policy;
      const grace = q.get("gracePeriodSeconds");
      if (grace !== null) options["gracePeriodSeconds"] = grace;
      const r = ops.delete(def, namespace, name as string, options, parseWriteOptions(q).dryRun);
      sendJson(res, r.code, r.object);
      return;
    }
    case "deletecollection": {
      await readJsonBody(req, limit, false, true);
      sendJson(res, 200, ops.deleteCollection(def, namespace, parseListOptions(def, q, false), parseWriteOptions(q).dryRun));
      return;
    }
    default:
      throw methodNotAllowed();
  }
}
