/**
 * Coalesces the events of concurrent requests into batch jobs. A batch goes
 * to the queue
 *  - at once (on the next turn of the event loop, so the requests of one turn
 *    share it) when no batch is on its way to Redis: a lone request waits for
 *    nothing;
 *  - when the batch on its way is acknowledged, while requests came in
 *    meanwhile: under load batches grow by themselves, one in flight at a time;
 *  - when it holds `maxEvents` events, or `windowMs` after its first request,
 *    whichever comes first (a slow Redis does not hold requests back longer).
 * Each request's promise settles when
 * the batch that carries its events is in the queue (Redis acknowledged the
 * add) or failed to get there, so the server answers 2xx only for events in
 * the queue.
 *
 * A request is never split across batches: a failed batch fails every request
 * in it and no other, so nothing of a rejected request is enqueued. (A request
 * larger than `maxEvents` goes alone; the producer puts its jobs in one MULTI.)
 *
 * States: idle --add--> collecting --(full | window | flush)--> sending --> idle.
 * Several batches may be sending at once. `flush()` sends what is collecting
 * and waits for every batch in flight; from the first flush on (SIGTERM), a
 * request that is still being handled is sent at once, without a window.
 */
import type { IncomingEvent } from '../queue/producer.js';

export interface CoalescerOptions {
  maxEvents: number;
  windowMs: number;
}

interface Pending {
  events: IncomingEvent[];
  waiters: { resolve: () => void; reject: (err: unknown) => void }[];
  timer: NodeJS.Timeout | undefined;
}

export class Coalescer {
  private current: Pending | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private draining = false;

  constructor(
    private readonly send: (events: IncomingEvent[]) => Promise<unknown>,
    private readonly options: CoalescerOptions,
  ) {}

  /** Adds one request's events; resolves once they are in the queue. */
  add(events: IncomingEvent[]): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    if (this.current && this.current.events.length + events.length > this.options.maxEvents) this.dispatch();
    const batch = (this.current ??= { events: [], waiters: [], timer: undefined });
    batch.events.push(...events);
    const done = new Promise<void>((resolve, reject) => batch.waiters.push({ resolve, reject }));
    if (this.draining || batch.events.length >= this.options.maxEvents) this.dispatch();
    else if (this.inFlight.size === 0) batch.timer ??= setTimeout(() => this.dispatch(), 0);
    else batch.timer ??= setTimeout(() => this.dispatch(), this.options.windowMs);
    return done;
  }

  private dispatch(): void {
    const batch = this.current;
    if (!batch) return;
    this.current = undefined;
    clearTimeout(batch.timer);
    const sending = this.send(batch.events).then(
      () => batch.waiters.forEach((w) => w.resolve()),
      (err: unknown) => batch.waiters.forEach((w) => w.reject(err)),
    );
    this.inFlight.add(sending);
    void sending.finally(() => {
      this.inFlight.delete(sending);
      // what arrived while this batch was on its way goes now
      if (this.inFlight.size === 0 && this.current) this.dispatch();
    });
  }

  /** Sends what is collecting and waits until every batch in flight settled. */
  async flush(): Promise<void> {
    this.draining = true;
    this.dispatch();
    await Promise.all(this.inFlight);
  }
}
