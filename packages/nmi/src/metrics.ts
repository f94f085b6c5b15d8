import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

const PREFIX = "podidentity_nmi_";

/**
 * NMI's Prometheus metrics, on a registry of its own (several NMIs can run in one test process). Labels never
 * carry a token, a client ID or a pod name: only routes, statuses, codes and outcomes.
 */
export class NmiMetrics {
  readonly registry = new Registry();
  readonly #requests = new RequestTally(`${PREFIX}requests_total`, `${PREFIX}request_duration_seconds`);
  readonly upstreamCalls: Counter<"target" | "outcome">;
  readonly upstreamDuration: Histogram<"target">;
  readonly tokenCache: Counter<"result">;
  readonly pendingWaits: Counter<"outcome">;
  readonly pendingWaitDuration: Histogram;
  readonly pendingInFlight: Gauge;
  readonly informerErrors: Counter<"informer">;
  readonly interceptionRepairs: Counter;
  readonly connectionsClosed: Counter<"reason">;
  readonly ready: Gauge;
  readonly listenerWaiting: Gauge;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    // The registry only reads name, help, type and get() of what it renders; its typings ask for a full metric class.
    this.registry.registerMetric(this.#requests.counter("Requests answered, by route, HTTP status and error code (ok on success)") as unknown as Counter);
    this.registry.registerMetric(this.#requests.histogram("Time to answer a request, by route and HTTP status") as unknown as Histogram);
    this.upstreamCalls = new Counter({ name: `${PREFIX}upstream_calls_total`, help: "Calls to the upstream IMDS or Entra ID, by target and outcome (ok, HTTP status, error)", labelNames: ["target", "outcome"], registers });
    this.upstreamDuration = new Histogram({
      name: `${PREFIX}upstream_duration_seconds`,
      help: "Latency of calls to the upstream IMDS or Entra ID",
      labelNames: ["target"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20],
      registers,
    });
    this.tokenCache = new Counter({ name: `${PREFIX}token_cache_total`, help: "Token cache lookups: hit, miss, refresh (served from cache while refreshing ahead)", labelNames: ["result"], registers });
    this.pendingWaits = new Counter({ name: `${PREFIX}pending_waits_total`, help: "Requests held while their identity assignment completed, by outcome", labelNames: ["outcome"], registers });
    this.pendingWaitDuration = new Histogram({
      name: `${PREFIX}pending_wait_duration_seconds`,
      help: "How long requests were held for a pending assignment",
      buckets: [0.1, 0.5, 1, 2, 5, 10, 20, 30],
      registers,
    });
    this.pendingInFlight = new Gauge({ name: `${PREFIX}pending_waits_in_flight`, help: "Requests held now for a pending assignment", registers });
    this.informerErrors = new Counter({ name: `${PREFIX}informer_errors_total`, help: "List/watch failures of NMI's informers (each is retried with backoff)", labelNames: ["informer"], registers });
    this.interceptionRepairs = new Counter({ name: `${PREFIX}iptables_repairs_total`, help: "Times the aad-metadata iptables rules were found missing or changed and re-created", registers });
    this.connectionsClosed = new Counter({
      name: `${PREFIX}connections_closed_total`,
      help: "Connections NMI closed itself: idle (no request within --idle-connection-timeout), evicted (idle at --max-connections), refused (cap reached with every connection busy)",
      labelNames: ["reason"],
      registers,
    });
    this.listenerWaiting = new Gauge({ name: `${PREFIX}listener_waiting_for_port`, help: "1 while another process holds NMI's port and NMI waits for it (e.g. aad-pod-identity v1.8's NMI during a migration)", registers });
    this.ready = new Gauge({ name: `${PREFIX}ready`, help: "1 when interception is installed and informers have synced", registers });
    if (options.defaultMetrics === true) collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
  }

  /** One answered request (tallied locally: see RequestTally). */
  observeRequest(route: string, status: number, code: string, seconds: number): void {
    this.#requests.record(route, status, code, seconds);
  }
}

const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30];

interface Tally {
  route: string;
  status: string;
  code: string;
  count: number;
}

interface Durations {
  route: string;
  status: string;
  buckets: number[];
  sum: number;
  count: number;
}

type MetricValue = { labels: Record<string, string | number>; value: number; metricName?: string };

/**
 * The request counter and latency histogram, kept as plain counts and rendered in prom-client's format at scrape
 * time. prom-client hashes the label set on every inc()/observe(); on the token route's cached path that was a
 * measurable share of NMI's CPU per request, so requests are tallied by a string key here instead.
 */
class RequestTally {
  readonly #counts = new Map<string, Tally>();
  readonly #durations = new Map<string, Durations>();
  readonly #counterName: string;
  readonly #histogramName: string;

  constructor(counterName: string, histogramName: string) {
    this.#counterName = counterName;
    this.#histogramName = histogramName;
  }

  record(route: string, status: number, code: string, seconds: number): void {
    const statusText = String(status);
    const key = `${route} ${statusText} ${code}`;
    const tally = this.#counts.get(key);
    if (tally !== undefined) tally.count++;
    else this.#counts.set(key, { route, status: statusText, code, count: 1 });
    const dKey = `${route} ${statusText}`;
    let d = this.#durations.get(dKey);
    if (d === undefined) this.#durations.set(dKey, (d = { route, status: statusText, buckets: REQUEST_BUCKETS.map(() => 0), sum: 0, count: 0 }));
    d.sum += seconds;
    d.count++;
    for (let i = 0; i < REQUEST_BUCKETS.length; i++) {
      if (seconds <= REQUEST_BUCKETS[i]!) {
        d.buckets[i]!++;
        break;
      }
    }
  }

  counter(help: string): Metric {
    return {
      name: this.#counterName,
      help,
      type: "counter",
      get: async () => ({
        name: this.#counterName,
        help,
        type: "counter",
        aggregator: "sum",
        values: [...this.#counts.values()].map((t): MetricValue => ({ labels: { route: t.route, status: t.status, code: t.code }, value: t.count })),
      }),
      reset: () => this.#counts.clear(),
    };
  }

  histogram(help: string): Metric {
    const name = this.#histogramName;
    return {
      name,
      help,
      type: "histogram",
      get: async () => {
        const values: MetricValue[] = [];
        for (const d of this.#durations.values()) {
          let cumulative = 0;
          REQUEST_BUCKETS.forEach((le, i) => {
            cumulative += d.buckets[i]!;
            values.push({ labels: { route: d.route, status: d.status, le }, value: cumulative, metricName: `${name}_bucket` });
          });
          values.push({ labels: { route: d.route, status: d.status, le: "+Inf" }, value: d.count, metricName: `${name}_bucket` });
          values.push({ labels: { route: d.route, status: d.status }, value: d.sum, metricName: `${name}_sum` });
          values.push({ labels: { route: d.route, status: d.status }, value: d.count, metricName: `${name}_count` });
        }
        return { name, help, type: "histogram", aggregator: "sum", values };
      },
      reset: () => this.#durations.clear(),
    };
  }
}

/** The shape prom-client's Registry renders (what its own metrics' get() returns). */
interface Metric {
  name: string;
  help: string;
  type: string;
  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricValue[] }>;
  reset(): void;
}
