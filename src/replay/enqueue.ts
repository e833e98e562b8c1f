/**
 * `replay --enqueue`: sends an NDJSON stream to running workers through the
 * producer, as batch jobs of MAX_BATCH_EVENTS. Lines that are not JSON objects
 * are reported here; everything else is validated by the workers (an invalid
 * event is reported in its batch job's result, by index).
 */
import type { Config } from '../config.js';
import { ValidationError } from '../errors.js';
import { decodeLine, isBlank } from './lines.js';
import { MAX_BATCH_EVENTS } from '../queue/jobs.js';
import { Producer, producerOptions, type IncomingEvent } from '../queue/producer.js';

export interface EnqueueSummary {
  read: number;
  enqueued: number;
  rejected: number;
  jobs: number;
  seconds: number;
}

export async function enqueueStream(
  lines: AsyncIterable<string | Uint8Array>,
  config: Pick<Config, 'redisUrl' | 'redisCluster' | 'queueName' | 'queuePrefix' | 'enqueueTimeoutMs'>,
  onInvalid: (line: number, reason: string) => void,
): Promise<EnqueueSummary> {
  const started = performance.now();
  // the failed call's EnqueueError is the one line the command prints
  const producer = new Producer(producerOptions(config, () => {}));
  const s: EnqueueSummary = { read: 0, enqueued: 0, rejected: 0, jobs: 0, seconds: 0 };
  let batch: IncomingEvent[] = [];
  const send = async (): Promise<void> => {
    if (batch.length === 0) return;
    await producer.enqueueBatch(batch);
    s.enqueued += batch.length;
    s.jobs += 1;
    batch = [];
  };
  try {
    let lineNo = 0;
    for await (const line of lines) {
      lineNo += 1;
      if (isBlank(line)) continue;
      s.read += 1;
      let value: unknown;
      try {
        value = JSON.parse(decodeLine(line));
      } catch (e) {
        if (e instanceof ValidationError) {
          s.rejected += 1;
          onInvalid(lineNo, e.message);
          continue;
        }
        s.rejected += 1;
        onInvalid(lineNo, `event: must be valid JSON (${(e as Error).message})`);
        continue;
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        s.rejected += 1;
        onInvalid(lineNo, 'event: must be a JSON object');
        continue;
      }
      // only the shape is known here; the workers validate each event and report it by index
      batch.push(value as IncomingEvent);
      if (batch.length >= MAX_BATCH_EVENTS) await send();
    }
    await send();
  } finally {
    await producer.close();
  }
  s.seconds = (performance.now() - started) / 1000;
  return s;
}
