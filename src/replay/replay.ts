/**
 * Replays an NDJSON stream through the same validation, buffer and flusher
 * the worker uses. With the *event* clock (default) the buffer clock is the
 * largest createdAt read so far, so a recorded stream gives the same rows at
 * any speed; with the *wall* clock it is Date.now().
 *
 * Lines are processed in chunks: each chunk is validated, ingested (one
 * script call per shard) at the clock after the chunk, then swept and
 * flushed. Sweeping only after a chunk's ingest never emits a row earlier
 * than event-by-event processing would, so chunking cannot break O1.
 *
 * While the stream runs, only full batches (FLUSH_MAX_ROWS) are inserted:
 * a replay is about throughput, and ClickHouse prefers few large inserts
 * (every insert also feeds the dashboard views). --drain inserts the rest.
 */
import type { Logger } from 'pino';
import type { SessionBuffer } from '../buffer/session-buffer.js';
import { ValidationError } from '../errors.js';
import { normalizeLine, type NormalizedEvent } from '../event/normalize.js';
import { decodeLine, isBlank } from './lines.js';
import type { Flusher } from '../flush/flusher.js';

export type ClockKind = 'event' | 'wall';

export interface ReplayOptions {
  clock: ClockKind;
  /** Finalise every held session at end of input and wait until every row is in ClickHouse. */
  drain: boolean;
  maxFutureMs: number;
  chunkSize?: number;
  /** Called for each rejected line (1-based line number). */
  onInvalid?: (line: number, reason: string) => void;
  /** Called after each chunk with the lines read so far. */
  onProgress?: (linesRead: number) => void;
  log?: Logger;
}

export interface ReplaySummary {
  read: number;
  accepted: number;
  rejected: number;
  duplicates: number;
  late: number;
  rowsWritten: number;
  sessionsWritten: number;
  seconds: number;
}

export async function replay(
  lines: AsyncIterable<string | Uint8Array>,
  buffer: SessionBuffer,
  flusher: Flusher,
  options: ReplayOptions,
): Promise<ReplaySummary> {
  const started = performance.now();
  const chunkSize = options.chunkSize ?? 2_000;
  const s: ReplaySummary = { read: 0, accepted: 0, rejected: 0, duplicates: 0, late: 0, rowsWritten: 0, sessionsWritten: 0, seconds: 0 };
  let eventClock = 0;
  const clock = (): number => (options.clock === 'event' ? eventClock : Date.now());
  let chunk: NormalizedEvent[] = [];

  const processChunk = async (): Promise<void> => {
    if (chunk.length > 0) {
      for (const e of chunk) if (e.createdAtMs > eventClock) eventClock = e.createdAtMs;
      const r = await buffer.ingest(chunk, clock());
      s.accepted += r.accepted;
      s.duplicates += r.duplicates;
      s.late += r.late;
      chunk = [];
    }
    await buffer.sweep(clock());
    const flushed = await flusher.tick(false, 'full');
    s.rowsWritten += flushed.rows;
    s.sessionsWritten += flushed.sessions;
    options.onProgress?.(s.read);
  };

  let lineNo = 0;
  for await (const line of lines) {
    lineNo += 1;
    if (isBlank(line)) continue;
    s.read += 1;
    try {
      chunk.push(normalizeLine(decodeLine(line), { receivedAtMs: Date.now(), maxFutureMs: options.maxFutureMs }));
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      s.rejected += 1;
      options.onInvalid?.(lineNo, err.message);
    }
    if (chunk.length >= chunkSize) await processChunk();
  }
  await processChunk();

  if (options.drain) {
    // as if the inactivity timeout had passed for every held session
    const end = clock() + buffer.settings.sessionTimeoutMs + buffer.settings.graceMs + 1;
    await buffer.sweep(end);
    const flushed = await flusher.tick(true);
    s.rowsWritten += flushed.rows;
    s.sessionsWritten += flushed.sessions;
  }
  s.seconds = (performance.now() - started) / 1000;
  return s;
}
