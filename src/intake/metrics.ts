/**
 * The ingestion server's Prometheus metrics, served on its own port at
 * /metrics. No label carries user data: routes are the registered patterns,
 * statuses are numbers, outcomes a fixed set.
 */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class IntakeMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'event_lens_http_requests_total',
    help: 'HTTP requests answered by event-lens serve, by route and status',
    labelNames: ['route', 'status'],
    registers: [this.registry],
  });
  readonly events = new Counter({
    name: 'event_lens_intake_events_total',
    help: 'Events received by event-lens serve: accepted (in the queue), rejected (invalid), bot (dropped), unavailable (Redis or backpressure)',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly botSignals = new Counter({
    name: 'event_lens_intake_bot_signals_total',
    help: 'Bot signals seen by event-lens serve, by reason (user-agent, webdriver, no-fetch-metadata, no-client-hints) and action (drop, flag)',
    labelNames: ['reason', 'action'],
    registers: [this.registry],
  });
  readonly enqueueSeconds = new Histogram({
    name: 'event_lens_enqueue_duration_seconds',
    help: 'Time from a request being ready to enqueue until Redis acknowledged its batch (includes the coalescing window)',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly batchEvents = new Histogram({
    name: 'event_lens_intake_batch_events',
    help: 'Events per coalesced batch job',
    buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'event_lens_serve_process_' });
  }
}
