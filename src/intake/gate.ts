/**
 * Whether the server takes events: Redis answers, and the worker's ready
 * backlog (rows waiting for ClickHouse, all shards) is under the high
 * watermark. Read once a second in the background, so a request never waits
 * on it; hysteresis as in the worker (closed at the high watermark, open again
 * below the low one).
 *
 * States: open --backlog >= high--> backpressure --backlog <= low--> open;
 * any state --Redis fails--> redis-down --Redis answers--> (by backlog).
 */
export type GateState = 'open' | 'backpressure' | 'redis-down';

export interface GateOptions {
  readBacklog: () => Promise<number>;
  highWatermark: number;
  lowWatermark: number;
  intervalMs?: number;
  onChange?: (state: GateState, backlog: number) => void;
}

export class IntakeGate {
  private stateValue: GateState = 'open';
  private backlogValue = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: GateOptions) {}

  get state(): GateState {
    return this.stateValue;
  }

  /** Reads the backlog now and then every interval, until stop(). */
  async start(): Promise<void> {
    await this.check();
    const loop = (): void => {
      this.timer = setTimeout(() => void this.check().finally(() => this.timer && loop()), this.options.intervalMs ?? 1_000);
      this.timer.unref();
    };
    loop();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** One reading of the backlog; exposed for tests. */
  async check(): Promise<void> {
    let next: GateState;
    try {
      this.backlogValue = await this.options.readBacklog();
      const over = this.stateValue === 'backpressure' ? this.backlogValue > this.options.lowWatermark : this.backlogValue >= this.options.highWatermark;
      next = over ? 'backpressure' : 'open';
    } catch {
      next = 'redis-down';
    }
    if (next !== this.stateValue) {
      this.stateValue = next;
      this.options.onChange?.(next, this.backlogValue);
    }
  }
}
