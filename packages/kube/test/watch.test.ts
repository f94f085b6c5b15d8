import type { KubeApiServer } from "@podidentity/testbed";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { KubeApiError, type KubeClient, type KubeObject, type WatchEvent } from "../src/index";
import { LineSplitter } from "../src/ndjson";
import { clientFor, configMap, rawServer, startKube } from "./helpers/cluster";

let kube: KubeApiServer;
const clients: KubeClient[] = [];
const closers: Array<() => Promise<void>> = [];

beforeEach(async () => {
  kube = await startKube();
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  for (const close of closers.splice(0)) await close();
  await kube.close();
});

function client(...args: Parameters<typeof clientFor>): KubeClient {
  const c = clientFor(...args);
  clients.push(c);
  return c;
}

async function collect<T>(stream: AsyncIterable<WatchEvent<T>>): Promise<{ events: WatchEvent<T>[]; error: unknown }> {
  const events: WatchEvent<T>[] = [];
  try {
    for await (const e of stream) events.push(e);
    return { events, error: undefined };
  } catch (error) {
    return { events, error };
  }
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("LineSplitter", () => {
  it("rebuilds lines split at every byte, including inside multi-byte UTF-8 characters", () => {
    const text = '{"type":"ADDED","object":{"name":"日本-é-🙂"}}\n\n{"type":"BOOKMARK"}\n';
    const bytes = Buffer.from(text, "utf8");
    const splitter = new LineSplitter(1024);
    const lines: string[] = [];
    for (const byte of bytes) lines.push(...splitter.push(Buffer.from([byte])));
    expect(lines).toEqual(['{"type":"ADDED","object":{"name":"日本-é-🙂"}}', '{"type":"BOOKMARK"}']);
    expect(splitter.pendingBytes).toBe(0);
  });

  it("fails a line longer than its bound instead of buffering it", () => {
    const splitter = new LineSplitter(8);
    expect(() => splitter.push(Buffer.from("0123456789"))).toThrow(RangeError);
  });
});

describe("KubeClient.watch", () => {
  it("survives a stream written one byte at a time, split inside a UTF-8 character", async () => {
    const name = "café-日本";
    const body = Buffer.from(
      `${JSON.stringify({ type: "ADDED", object: { metadata: { name, resourceVersion: "7" } } })}\n${JSON.stringify({ type: "BOOKMARK", object: { metadata: { resourceVersion: "8" } } })}\n`,
    );
    let chunks = 0;
    const raw = await rawServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.socket?.setNoDelay(true);
      void (async () => {
        for (const byte of body) {
          await new Promise<void>((resolve) => res.write(Buffer.from([byte]), () => resolve()));
          chunks++;
          await flush();
        }
        res.end();
      })();
    });
    closers.push(raw.close);
    const { events, error } = await collect(client(raw.url).watch<KubeObject>("/api/v1/configmaps"));
    expect(error).toBeUndefined();
    expect(chunks).toBe(body.length);
    expect(events).toEqual([
      { type: "ADDED", object: { metadata: { name, resourceVersion: "7" } } },
      { type: "BOOKMARK", object: { metadata: { resourceVersion: "8" } } },
    ]);
    expect(new URL(raw.requests[0]?.url ?? "", raw.url).searchParams.get("watch")).toBe("true");
  });

  it("streams the emulator's events and surfaces an ERROR 410 event as KubeApiError isGone", async () => {
    const c = client(kube.url);
    const rv = String(kube.resourceVersion);
    kube.seed(configMap("a"));
    const seen: string[] = [];
    const stream = c.watch<KubeObject>("/api/v1/namespaces/default/configmaps", { query: { resourceVersion: rv } });
    for await (const e of stream) {
      seen.push(`${e.type} ${e.object.metadata?.name}`);
      break;
    }
    expect(seen).toEqual(["ADDED a"]);
    await vi.waitFor(() => expect(kube.activeWatches()).toBe(0));

    kube.seed(configMap("b"));
    kube.compactHistory();
    const { error } = await collect(c.watch("/api/v1/namespaces/default/configmaps", { query: { resourceVersion: rv } }));
    expect(error).toBeInstanceOf(KubeApiError);
    expect([(error as KubeApiError).status, (error as KubeApiError).isGone, (error as KubeApiError).method]).toEqual([410, true, "WATCH"]);
  });

  it("fails a watch that stays silent past idleTimeoutMs (IdleTimeout) and one cut mid-event (StreamBroken)", async () => {
    const raw = await rawServer((req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      if (req.url?.includes("cut")) {
        res.write('{"type":"ADDED","object":{"metad');
        setImmediate(() => res.socket?.destroy());
      } else res.flushHeaders();
    });
    closers.push(raw.close);
    const c = client(raw.url);
    const idle = await collect(c.watch("/idle", { idleTimeoutMs: 50 }));
    expect([(idle.error as KubeApiError).status, (idle.error as KubeApiError).reason]).toEqual([0, "IdleTimeout"]);
    const cut = await collect(c.watch("/cut"));
    expect([(cut.error as KubeApiError).status, (cut.error as KubeApiError).reason]).toEqual([0, "StreamBroken"]);
  });

  it("ends without an error when the caller aborts, and closes the connection", async () => {
    const c = client(kube.url);
    const abort = new AbortController();
    const done = collect(c.watch("/api/v1/namespaces/default/configmaps", { signal: abort.signal }));
    await vi.waitFor(() => expect(kube.activeWatches("configmaps")).toBe(1));
    abort.abort();
    expect(await done).toEqual({ events: [], error: undefined });
    await vi.waitFor(() => expect(kube.activeWatches("configmaps")).toBe(0));
  });

  it("reports a refused watch with the server's status", async () => {
    const error = (await collect(client(kube.url, { token: "wrong" }).watch("/api/v1/configmaps"))).error as KubeApiError;
    expect([error.status, error.method]).toEqual([401, "WATCH"]);
  });
});
