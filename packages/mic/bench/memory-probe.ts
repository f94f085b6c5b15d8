// Preloaded into MIC's process by run.ts (`node --expose-gc --import <this file as .mjs> dist/main.js`: run.ts strips
// its types first, so MIC's process does not load Node's TypeScript stripper, which a .ts preload would): the
// bench's sampling point. On SIGUSR2 it runs V8's compacting full garbage collection, then writes the process's memory as JSON to
// $MIC_BENCH_MEMORY_FILE (with $MIC_BENCH_HEAP_SNAPSHOT / $MIC_BENCH_SMAPS set, a heap snapshot / /proc/self/smaps to those paths), so RSS is read
// after garbage that is merely uncollected yet has gone. Not part of MIC: only the bench loads it.
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { getHeapSpaceStatistics, writeHeapSnapshot } from "node:v8";

const file = process.env["MIC_BENCH_MEMORY_FILE"];
let samples = 0;
const gc = (globalThis as { gc?: (options?: object) => void }).gc;
/**
 * V8's last-resort collection: full, synchronous, and compacting (what V8 runs under memory pressure). A plain
 * `gc()` frees objects but leaves the pages they fragmented committed, so RSS would still show the burst's peak.
 */
const collect = (): void => gc?.({ type: "major", execution: "sync", flavor: "last-resort" });
if (file && gc) {
  process.on("SIGUSR2", () => {
    collect();
    // V8 unmaps the pages a collection freed on a background thread: sample once that had time to run.
    setTimeout(() => {
      collect();
      const m = process.memoryUsage();
      if (process.env["MIC_BENCH_HEAP_SNAPSHOT"]) writeHeapSnapshot(process.env["MIC_BENCH_HEAP_SNAPSHOT"]);
      if (process.env["MIC_BENCH_SMAPS"]) writeFileSync(`${process.env["MIC_BENCH_SMAPS"]}.${++samples}`, readFileSync("/proc/self/smaps", "utf8"));
      const spaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, s.space_size]));
      // Written then renamed, so the bench never reads half a file.
      writeFileSync(`${file}.tmp`, JSON.stringify({ rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, ...spaces }));
      renameSync(`${file}.tmp`, file);
    }, 1_000);
  });
}
