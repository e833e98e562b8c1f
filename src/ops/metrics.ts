/**
 * Prometheus metrics (prom-client) and the HTTP endpoints /metrics, /healthz
 * (the process is alive) and /readyz (Redis and ClickHouse answer and the
 * process is not shutting down). Names follow Prometheus conventions; no
 * label carries user data (shard numbers and script names only).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly eventsIngested = this.counter('event_lens_events_ingested_total', 'Events accepted into the buffer');
  readonly eventsRejected = this.counter('event_lens_events_rejected_total', 'Events rejected by validation');
  readonly eventsDuplicate = this.counter('event_lens_events_duplicate_total', 'Events dropped because their id was seen before (retries)');
  readonly eventsLate = this.counter('event_lens_events_late_total', 'Events that arrived after their neighbours were written');
  readonly rowsEmitted = this.counter('event_lens_rows_emitted_total', 'Rows whose duration settled and which moved to the ready queue');
  readonly sessionsFinalised = this.counter('event_lens_sessions_finalised_total', 'Sessions finalised (ended or idle)');
  readonly rowsFlushed = this.counter('event_lens_rows_flushed_total', 'Rows confirmed by ClickHouse and acknowledged');
  readonly deadLetters = this.counter('event_lens_dead_letter_rows_total', 'Rows ClickHouse rejected, moved to the dead-letter list');
  readonly insertErrors = this.counter('event_lens_insert_errors_total', 'Failed insert attempts', ['retryable']);
  readonly insertSeconds = new Histogram({
    name: 'event_lens_insert_duration_seconds',
    help: 'Time of one ClickHouse insert',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly scriptSeconds = new Histogram({
    name: 'event_lens_redis_script_duration_seconds',
    help: 'Time of one Lua script call, by script',
    labelNames: ['script'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  readonly backlogRows = this.gauge('event_lens_backlog_rows', 'Rows in the ready queue and in-flight batch, by shard', ['shard']);
  readonly heldSessions = this.gauge('event_lens_held_sessions', 'Sessions with held events');
  readonly heldEvents = this.gauge('event_lens_held_events', 'Events held until their duration settles');
  readonly sweepLagSeconds = this.gauge('event_lens_sweep_lag_seconds', 'How far past its due time the most overdue session is');
  readonly leaseOwned = this.gauge('event_lens_lease_owned', '1 when this process holds the flush lease of the shard', ['shard']);
  readonly backpressure = this.gauge('event_lens_backpressure', '1 while job intake is paused: the backlog passed the high watermark, or Redis is at maxmemory');
  readonly deadLetterRows = this.gauge('event_lens_dead_letter_rows', 'Rows in the dead-letter lists now (all shards), waiting for an operator');
  readonly jobsFailed = this.counter('event_lens_jobs_failed_total', 'Failed job attempts (an attempt that will be retried counts too)', ['final']);
  readonly redisOom = this.counter('event_lens_redis_oom_total', 'ingest calls Redis refused with OOM (held and retried)');

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'event_lens_process_' });
  }

  private counter(name: string, help: string, labelNames: string[] = []): Counter {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  private gauge(name: string, help: string, labelNames: string[] = []): Gauge {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }
}

export interface HealthServer {
  url: string;
  close(): Promise<void>;
}

/** Serves /metrics, /healthz and /readyz; `ready()` decides /readyz. */
export async function serveHealth(metrics: Metrics, port: number, ready: () => Promise<boolean>, host = '0.0.0.0'): Promise<HealthServer> {
  const server = http.createServer((req, res) => {
    const respond = (status: number, body: string, type = 'text/plain'): void => {
      res.writeHead(status, { 'content-type': type });
      res.end(body);
    };
    switch (req.url) {
      case '/metrics':
        metrics.registry.metrics().then((text) => respond(200, text, metrics.registry.contentType), (err: Error) => respond(500, err.message));
        return;
      case '/healthz':
        respond(200, 'ok\n');
        return;
      case '/readyz':
        ready().then((ok) => respond(ok ? 200 : 503, ok ? 'ready\n' : 'not ready\n'), () => respond(503, 'not ready\n'));
        return;
      default:
        respond(404, 'not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const { port: bound } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${bound}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
