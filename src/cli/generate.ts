import { createWriteStream } from 'node:fs';
import type { Command } from 'commander';
import { DEMO_VISIBILITY, defaultStartMs, generateEvents } from '../generate/model.js';

import { fraction, instant, int } from './flags.js';

export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description('write a realistic NDJSON event stream (seeded: the same options give the same bytes)')
    .requiredOption('--sessions <n>', 'number of sessions', int(1))
    .option('--seed <s>', 'random seed', int(), 1)
    .option('--start <time>', 'first session start (default: so that the stream ends at the start of the current hour); fix it for the same bytes on every run', instant)
    .option('--jitter-ms <ms>', 'largest random arrival delay', int(), 3_000)
    .option('--late-fraction <f>', 'share of events that arrive 30..90 s late', fraction, 0.002)
    .option('--visibility <f>', 'share of pages hidden for a while and shown again (page_hidden/page_visible, as the visibility snippet sends them); above 0 every last page is hidden at its end; 0 for none', fraction, DEMO_VISIBILITY)
    .option('-o, --output <file>', 'write to a file instead of standard output')
    .action(async (opts: { sessions: number; seed: number; start?: number; jitterMs: number; lateFraction: number; visibility: number; output?: string }) => {
      const startMs = opts.start ?? defaultStartMs(opts.sessions, Date.now());
      const events = generateEvents({ sessions: opts.sessions, seed: opts.seed, startMs, jitterMs: opts.jitterMs, lateFraction: opts.lateFraction, visibilityFraction: opts.visibility });
      const sink = opts.output ? createWriteStream(opts.output) : process.stdout;
      for (const e of events) {
        if (!sink.write(`${JSON.stringify(e)}\n`)) await new Promise((r) => sink.once('drain', r));
      }
      if (opts.output) await new Promise((r) => (sink as ReturnType<typeof createWriteStream>).end(r));
    });
}
