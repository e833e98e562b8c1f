import { createReadStream } from 'node:fs';
import type { Command } from 'commander';
import { loadConfig } from '../config.js';
import { enqueueStream } from '../replay/enqueue.js';
import { readLineBytes } from '../replay/lines.js';
import { replay, type ClockKind } from '../replay/replay.js';
import { openPipeline } from './context.js';
import { err, out } from './output.js';

/** The lines of a file (or stdin for "-"), as bytes: invalid UTF-8 is reported per line, not replaced. */
function readLines(file: string): AsyncIterable<Uint8Array> {
  return readLineBytes(file === '-' ? process.stdin : createReadStream(file));
}

export function registerReplay(program: Command): void {
  program
    .command('replay')
    .description('replay an NDJSON stream (one event per line) through validation, the buffer and the flusher, in-process')
    .argument('<file>', 'NDJSON file, or - for standard input')
    .option('--clock <clock>', 'buffer clock: event (advances with createdAt, deterministic) or wall', 'event')
    .option('--drain', 'at end of input finalise every held session and wait until every row is in ClickHouse', false)
    .option('--enqueue', 'send the stream through the producer to running workers (batch jobs) instead of processing it here', false)
    .action(async (file: string, opts: { clock: string; drain: boolean; enqueue: boolean }) => {
      if (opts.clock !== 'event' && opts.clock !== 'wall') {
        throw new Error(`--clock ${JSON.stringify(opts.clock)}: expected event or wall`);
      }
      const config = loadConfig(process.env);
      if (opts.enqueue) {
        const s = await enqueueStream(readLines(file), config, (line, reason) => err(`line ${line}: ${reason}`));
        out(`replay: read=${s.read} enqueued=${s.enqueued} rejected=${s.rejected} jobs=${s.jobs} seconds=${s.seconds.toFixed(2)}`);
        return;
      }
      const pipeline = await openPipeline(config);
      try {
        const s = await replay(readLines(file), pipeline.buffer, pipeline.flusher, {
          clock: opts.clock as ClockKind,
          drain: opts.drain,
          maxFutureMs: config.maxFutureMs,
          onInvalid: (line, reason) => err(`line ${line}: ${reason}`),
        });
        out(
          `replay: read=${s.read} accepted=${s.accepted} rejected=${s.rejected} duplicates=${s.duplicates} late=${s.late} ` +
            `rows_written=${s.rowsWritten} sessions_written=${s.sessionsWritten} seconds=${s.seconds.toFixed(2)} events_per_s=${Math.round(s.read / Math.max(s.seconds, 1e-9))}`,
        );
      } finally {
        await pipeline.close();
      }
    });
}
