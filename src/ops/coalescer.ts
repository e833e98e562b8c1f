/**
 * Coalesces the items of concurrent callers into one call of `send`: the
 * ingestion server's requests into batch jobs, and the worker's concurrent
 * jobs into one ingest call. A batch is sent
 *  - at once (on the next turn of the event loop, so the callers of one turn
 *    share it) when no batch is on its way: a lone caller waits for nothing;
 *  - when the batch on its way is acknowledged, while callers came in
 *    meanwhile: under load batches grow by themselves, one in flight at a time;
 *  - when it holds `maxEvents` items, or `windowMs` after its first caller,
 *    whichever comes first (a slow dependency does not hold callers back longer).
 * Each caller's promise settles when the batch that carries its items was
 * sent (resolving with the results `send` gave for its items, in order) or
 * failed (rejecting every caller of that batch and no other).
 *
 * A caller is never split across batches. (A caller with more than
 * `maxEvents` items goes alone.)
 *
 * States: idle --add--> collecting --(full | window | flush)--> sending --> idle.
 * Several batches may be sending at once. `flush()` sends what is collecting
 * and waits for every batch in flight; from the first flush on (SIGTERM), a
 * caller is sent at once, without a window.
 */
export interface CoalescerOptions {
  maxEvents: number;
  windowMs: number;
}

interface Pending<T, R> {
  events: T[];
  waiters: { from: number; count: number; resolve: (results: R[]) => void; reject: (err: unknown) => void }[];
  timer: NodeJS.Timeout | undefined;
  /** The next-turn dispatch of a batch started while nothing was in flight (setImmediate: setTimeout(0) waits at least 1 ms). */
  immediate: NodeJS.Immediate | undefined;
}

export class Coalescer<T, R = unknown> {
  private current: Pending<T, R> | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private draining = false;

  constructor(
    /** Sends the items; may resolve with one result per item (callers get theirs). */
    private readonly send: (events: T[]) => Promise<readonly R[] | void>,
    private readonly options: CoalescerOptions,
  ) {}

  /** Adds one caller's items; resolves with their results once the batch carrying them was sent. */
  add(events: readonly T[]): Promise<R[]> {
    if (events.length === 0) return Promise.resolve([]);
    if (this.current && this.current.events.length + events.length > this.options.maxEvents) this.dispatch();
    const batch = (this.current ??= { events: [], waiters: [], timer: undefined, immediate: undefined });
    const from = batch.events.length;
    batch.events.push(...events);
    const done = new Promise<R[]>((resolve, reject) => batch.waiters.push({ from, count: events.length, resolve, reject }));
    if (this.draining || batch.events.length >= this.options.maxEvents) this.dispatch();
    else if (this.inFlight.size === 0) batch.immediate ??= setImmediate(() => this.dispatch());
    else batch.timer ??= setTimeout(() => this.dispatch(), this.options.windowMs);
    return done;
  }

  private dispatch(): void {
    const batch = this.current;
    if (!batch) return;
    this.current = undefined;
    clearTimeout(batch.timer);
    clearImmediate(batch.immediate);
    const sending = this.send(batch.events).then(
      (results) => batch.waiters.forEach((w) => w.resolve(results ? results.slice(w.from, w.from + w.count) : [])),
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
